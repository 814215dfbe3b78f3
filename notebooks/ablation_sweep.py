# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablation sweep: accuracy against cost, and what each design factor buys
#
# Reads a Hydra multirun folder (`logs/train/multiruns/<time>/`): its `summary.csv`, else each job's
# `job_result.json`, else the jobs' CSV logs (`rsn_lightning.runs.sweep_rows.load_sweep_rows`), or
# wandb runs (`load_wandb_rows`: offline run folders without an account, or `entity/project` through
# the API). Then a table of the runs, AP against GFLOPs and against training images/s with the Pareto
# front, and AP against stages, width, input size and PRM, with the RSN paper's COCO val numbers drawn
# beside and labelled as the paper's. Every figure is also written as a PNG.
#
# **Run it**: make a sweep, e.g. on a CPU
# `rsn-train -m experiment=quickstart logger=csv model.optimizer.lr=1e-3,2e-3,4e-3`, then open this
# notebook (`jupyter lab notebooks/ablation_sweep.ipynb`), or run it headless:
# `RSN_SWEEP=logs/train/multiruns/<time> jupyter execute notebooks/ablation_sweep.ipynb`.
# Settings (environment variables): `RSN_SWEEP` the sweep folder (default: the newest under
# `logs/train/multiruns`, looked for beside and above this notebook), `RSN_WANDB` a wandb folder or
# `entity/project` to read instead, `RSN_FIGURES` where the PNGs go (default `<sweep>/figures`).

# %%
import os
from pathlib import Path

from rsn_lightning.reports import sweep_figures, wandb_rows
from rsn_lightning.runs import sweep_rows

WANDB = os.environ.get("RSN_WANDB")
if WANDB:
    rows = wandb_rows.load_wandb_rows(WANDB)
    SOURCE = Path(WANDB) if Path(WANDB).exists() else Path("wandb_" + WANDB.replace("/", "_"))
else:
    if os.environ.get("RSN_SWEEP"):
        SOURCE = Path(os.environ["RSN_SWEEP"])
    else:
        found = sorted(p for base in (Path("."), Path("..")) for p in base.glob("logs/train/multiruns/*/*")
                       if p.is_dir())
        if not found:
            raise FileNotFoundError(
                "no sweep found under logs/train/multiruns (here or one folder up). Make one, e.g. "
                "`rsn-train -m experiment=quickstart logger=csv model.optimizer.lr=1e-3,2e-3,4e-3`, "
                "or set RSN_SWEEP to a sweep folder (or RSN_WANDB to wandb runs)")
        SOURCE = found[-1].parent
    rows = sweep_rows.load_sweep_rows(SOURCE)
FIGURES = Path(os.environ.get("RSN_FIGURES") or SOURCE / "figures")
print(f"{SOURCE}: {len(rows)} runs; swept: {', '.join(sweep_rows.swept_columns(rows)) or 'nothing'}")
print(sweep_rows.sweep_table_text(rows))

# %% [markdown]
# AP against cost. The Pareto front joins the runs no other run beats at lower cost. The paper's
# points (stars) are COCO val2017 at the paper's GFLOPs; this project counts fewer GFLOPs for the
# same networks (README, "Training on COCO and MPII"), and a synthetic-data run is not comparable in
# AP: they are there for scale, not as a claim.

# %%
import matplotlib.pyplot as plt

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
swept = sweep_rows.swept_columns(rows)
sweep_figures.plot_accuracy_vs_cost(rows, "gflops", ax=left, swept=swept)
sweep_figures.plot_accuracy_vs_cost(rows, "images_per_s", ax=right, swept=swept)
fig.tight_layout()

# %% [markdown]
# AP against each design factor the runs record (stages, width, input size, PRM) and each swept setting.

# %%
factors = [f for f in ("num_stages", "width_mult", "input_size", "prm", *swept)
           if any(r.get(f) not in (None, "") for r in rows)]
fig, axes = plt.subplots(1, max(1, len(factors)), figsize=(4.5 * max(1, len(factors)), 3.8), squeeze=False)
for ax, factor in zip(axes[0], factors):
    sweep_figures.plot_ap_by_factor(rows, factor, ax=ax)
fig.tight_layout()

# %% [markdown]
# Per keypoint: the mean OKS of each joint in the best and the worst job (from the jobs' CSV logs, with
# `logger=csv` or `many_loggers`). Face joints have the smallest OKS sigmas, so they move first when
# resolution or decoding changes.

# %%
from rsn_lightning.runs.sweeps import load_sweep

has_logs = not WANDB and any(SOURCE.glob("*/csv/metrics.csv"))
ax = sweep_figures.plot_keypoint_oks_best_worst(load_sweep(SOURCE)) if has_logs else None
if ax is None:
    print("no per-keypoint OKS logged by these jobs")
else:
    FIGURES.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(FIGURES / "keypoint_oks_best_worst.png")

# %% [markdown]
# The same figures as PNG files (what `sweep_figures.sweep_figures` writes without a notebook):

# %%
for path in sweep_figures.sweep_figures(rows, FIGURES):
    print(path)
