"""The figures of a sweep (rows of ``runs.sweep_rows``, records of ``runs.sweeps.load_sweep``): AP against
GFLOPs and against training images/s with the Pareto front, AP against stages, width, input size and PRM,
with the paper's COCO val numbers drawn beside and labelled as the paper's; per-keypoint OKS of the best
and the worst job; the AP curves. Each ``plot_*`` draws on an axis and returns it; :func:`sweep_figures`
writes PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsn_lightning.reports.axes import axis_or_new, legend_if_drawn, save_png
from rsn_lightning.runs.sweep_rows import ap_key, finite_number, pareto_front, swept_columns
from rsn_lightning.runs.sweeps import SweepRun, swept_keys

# COCO val2017 AP (percent) and GFLOPs from the RSN paper's table (Cai et al., ECCV 2020), as in README
PAPER_COCO_VAL = (
    {"model": "RSN-18", "AP": 73.6, "gflops": 2.5, "num_stages": 1, "input_size": "192x256"},
    {"model": "RSN-50", "AP": 74.7, "gflops": 6.4, "num_stages": 1, "input_size": "192x256"},
    {"model": "RSN-101", "AP": 75.8, "gflops": 11.5, "num_stages": 1, "input_size": "192x256"},
    {"model": "2xRSN-50", "AP": 77.2, "gflops": 13.9, "num_stages": 2, "input_size": "192x256"},
    {"model": "3xRSN-50", "AP": 78.2, "gflops": 20.7, "num_stages": 3, "input_size": "192x256"},
    {"model": "4xRSN-50", "AP": 79.0, "gflops": 29.3, "num_stages": 4, "input_size": "192x256"},
    {"model": "4xRSN-50 384x288", "AP": 79.6, "gflops": 65.9, "num_stages": 4, "input_size": "288x384"},
)
PAPER_LABEL = "paper (Cai et al. 2020, COCO val)"


def _label(row, keys) -> str:
    return ", ".join(f"{k.split('.')[-1]}={row.get(k)}" for k in keys) or str(row.get("job"))


def plot_accuracy_vs_cost(rows, cost: str = "gflops", ax=None, paper: bool = True, swept=()):
    """AP (final evaluation) of each job against ``cost`` (``gflops`` or ``images_per_s``) with the
    Pareto front; with ``paper`` and ``cost="gflops"`` the paper's table beside, labelled as such.
    For ``images_per_s`` the front runs the other way (more images/s is better)."""
    ax = axis_or_new(ax)
    metric = ap_key(rows)
    scale = 100.0 if metric == "final_AP" else 1.0
    done = [r for r in rows if r.get(metric) is not None and r.get(cost) is not None]
    if done:
        xs = [r[cost] for r in done]
        ys = [r[metric] * scale for r in done]
        ax.scatter(xs, ys, zorder=3, label="this project's jobs")
        for r, x, y in zip(done, xs, ys):
            ax.annotate(_label(r, swept), (x, y), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        sign = -1 if cost == "images_per_s" else 1
        front = pareto_front([sign * x for x in xs], ys)
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "k--", lw=1, label="Pareto front")
    else:
        ax.text(0.5, 0.5, f"no job records both {metric} and {cost}", ha="center", transform=ax.transAxes)
    if paper and cost == "gflops" and metric == "final_AP":
        ax.scatter([p["gflops"] for p in PAPER_COCO_VAL], [p["AP"] for p in PAPER_COCO_VAL], marker="*", s=90,
                   color="tab:red", label=PAPER_LABEL)
        for p in PAPER_COCO_VAL:
            ax.annotate(p["model"], (p["gflops"], p["AP"]), fontsize="x-small", color="tab:red", xytext=(3, -9),
                        textcoords="offset points")
    ax.set_xlabel({"gflops": "GFLOPs (multiply-adds per image)", "images_per_s": "training images/s"}.get(cost, cost))
    ax.set_ylabel("AP (%)" if scale == 100 else metric)
    ax.grid(alpha=0.3)
    legend_if_drawn(ax)
    return ax


def plot_ap_by_factor(rows, factor: str, ax=None, paper: bool = True):
    """AP of each job against one design factor (``num_stages``, ``width_mult``, ``input_size``,
    ``prm`` or any swept override); for ``num_stages`` the paper's RSN-50 x stages rows beside."""
    ax = axis_or_new(ax, (5, 4))
    metric = ap_key(rows)
    scale = 100.0 if metric == "final_AP" else 1.0
    done = [r for r in rows if r.get(metric) is not None and r.get(factor) not in (None, "")]
    values = sorted({str(r[factor]) for r in done}, key=lambda v: (finite_number(v) is None, finite_number(v) or 0, v))
    pos = {v: i for i, v in enumerate(values)}
    if done:
        ax.scatter([pos[str(r[factor])] for r in done], [r[metric] * scale for r in done], zorder=3,
                   label="this project's jobs")
    else:
        ax.text(0.5, 0.5, f"no job records {factor}", ha="center", transform=ax.transAxes)
    if paper and factor == "num_stages" and metric == "final_AP":
        ref = [p for p in PAPER_COCO_VAL if "RSN-50" in p["model"] and p["input_size"] == "192x256"]
        for p in ref:
            pos.setdefault(str(p["num_stages"]), len(pos))
        ax.scatter([pos[str(p["num_stages"])] for p in ref], [p["AP"] for p in ref], marker="*", s=90,
                   color="tab:red", label=PAPER_LABEL + ", RSN-50")
    ax.set_xticks(range(len(pos)), list(pos))
    ax.set_xlabel(factor)
    ax.set_ylabel("AP (%)" if scale == 100 else metric)
    ax.grid(alpha=0.3)
    legend_if_drawn(ax)
    return ax


def plot_keypoint_oks_best_worst(runs, ax=None, metric: str = "val/AP"):
    """Per keypoint, the mean OKS (``val/per_keypoint/oks/<name>``, logged at each validation) of the
    best and the worst job of a sweep by best ``metric`` (``sweeps.load_sweep`` records). Returns None
    when no job logged per-keypoint figures."""
    prefix = "val/per_keypoint/oks/"
    done = sorted((r for r in runs if r.best.get(metric) is not None), key=lambda r: r.best[metric])
    if not done or not any(k.startswith(prefix) for k in done[-1].best):
        return None
    ax = axis_or_new(ax, (9, 3.5))
    names = [k[len(prefix):] for k in done[-1].best if k.startswith(prefix)]
    width = 0.4
    for shift, run in ((-width / 2, done[0]), (width / 2, done[-1])):
        values = [run.best.get(prefix + n, float("nan")) for n in names]
        ax.bar(np.arange(len(names)) + shift, values, width, label=f"job {run.job}: {metric} {run.best[metric]:.3f}")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    ax.set_ylabel("mean OKS")
    legend_if_drawn(ax)
    return ax


def sweep_figures(rows, out_dir, paper: bool = True) -> list[Path]:
    """Write ap_vs_gflops.png, ap_vs_images_per_s.png and ap_by_<factor>.png (for each of stages,
    width, input size and PRM that the jobs record, and each swept override) into ``out_dir``."""
    out = Path(out_dir)
    swept = swept_columns(rows)
    paths = [save_png(plot_accuracy_vs_cost(rows, "gflops", paper=paper, swept=swept), out / "ap_vs_gflops.png"),
             save_png(plot_accuracy_vs_cost(rows, "images_per_s", paper=paper, swept=swept),
                      out / "ap_vs_images_per_s.png")]
    for factor in ("num_stages", "width_mult", "input_size", "prm", *swept):
        if any(r.get(factor) not in (None, "") for r in rows):
            name = factor.replace("/", "_")
            paths.append(save_png(plot_ap_by_factor(rows, factor, paper=paper), out / f"ap_by_{name}.png"))
    return paths


def plot_sweep(runs: list[SweepRun], metric: str = "val/AP", ax=None):
    """The metric against epoch, one line per job, labelled by its swept values."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    keys = swept_keys(runs)
    for r in runs:
        if r.curve:
            label = ", ".join(f"{k.split('.')[-1]}={r.overrides.get(k)}" for k in keys) or r.job
            ax.plot(*zip(*r.curve), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax
