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
# # Error analysis: why the model loses AP
#
# The error taxonomy of Ronchi & Perona (ICCV 2017) as their coco-analyze computes it
# (`rsn_lightning.evaluation.error_analysis`): each keypoint of a detection matched to a person is good,
# jitter, inversion (left/right), swap (another person's) or miss; then scoring errors, background
# false positives and false negatives, and the AP after correcting each of them. The same analysis
# without Jupyter: `rsn-analyze GT.json RESULTS.json --out DIR`, or `rsn-eval ... analysis=true`.
#
# **Run it**: after `rsn-train experiment=quickstart` (its results JSON of every validation are in
# `logs/train/runs/<time>/results/`), open this notebook, or run it headless with
# `RSN_RESULTS=<results.json> jupyter execute notebooks/error_analysis.ipynb`. Settings (environment
# variables): `RSN_GT` the COCO keypoint ground truth (default: the synthetic val split,
# `data/synthetic/annotations/person_keypoints_val.json`), `RSN_RESULTS` a results file (default: the
# newest under `logs/train/runs/*/results`), `RSN_RESULTS_B` a second one to compare with (default:
# the previous validation of the same run, if any), `RSN_FIGURES` where the PNGs go (default
# `<results folder>/error_analysis`).

# %%
import os
from pathlib import Path

from rsn_lightning.reports import error_figures
from rsn_lightning.reports.error_figures import write_analysis


def newest(pattern):
    found = sorted((p for base in (Path("."), Path("..")) for p in base.glob(pattern)), key=lambda p: p.stat().st_mtime)
    return found


GT = Path(os.environ.get("RSN_GT") or next(iter(newest("data/synthetic/annotations/person_keypoints_val.json")),
                                            "data/synthetic/annotations/person_keypoints_val.json"))
candidates = newest("logs/train/runs/*/results/*.json")
if os.environ.get("RSN_RESULTS"):
    RESULTS = Path(os.environ["RSN_RESULTS"])
elif candidates:
    RESULTS = candidates[-1]
else:
    raise FileNotFoundError("no results file: run `rsn-train experiment=quickstart` first, or set RSN_RESULTS "
                            "(and RSN_GT) to a COCO keypoint results file and its ground truth")
if os.environ.get("RSN_RESULTS_B"):
    RESULTS_B = Path(os.environ["RSN_RESULTS_B"])
else:
    earlier = sorted(p for p in RESULTS.parent.glob("*.json") if p != RESULTS)
    RESULTS_B = earlier[-1] if earlier else None
FIGURES = Path(os.environ.get("RSN_FIGURES") or RESULTS.parent / "error_analysis")
report = write_analysis(GT, RESULTS, FIGURES / RESULTS.stem)
print(f"{RESULTS} against {GT}")
print("keypoint labels:", report["keypoint_errors"])
print("background false positives:", report["background_fp"]["count"],
      "| false negatives:", report["false_negatives"]["count"], "of", report["ground_truth_people"], "people")

# %% [markdown]
# Which joints go wrong, and how:

# %%
error_figures.plot_keypoint_errors(report);

# %% [markdown]
# The AP gained by correcting each error type, cumulatively in coco-analyze's order (miss, swap,
# inversion, jitter, score, background FP, false negatives) and each alone:

# %%
for step in report["ap_after_correction"]:
    print(f"{step['error']:<16} AP {step['AP']:.4f}  AP50 {step['AP50']:.4f}  AP75 {step['AP75']:.4f}")
error_figures.plot_ap_improvement(report);

# %% [markdown]
# OKS of the matched detections by person size:

# %%
error_figures.plot_oks_by_size(report);

# %% [markdown]
# Two results files side by side (e.g. two checkpoints, or two decodings): which error types the
# change fixed.

# %%
if RESULTS_B is not None:
    report_b = write_analysis(GT, RESULTS_B, FIGURES / RESULTS_B.stem)
    reports = {RESULTS_B.stem: report_b, RESULTS.stem: report}
    error_figures.compare_error_analyses(reports, FIGURES / "comparison.png")
    for kind in report["keypoint_errors"]:
        print(f"{kind:<10} {report_b['keypoint_errors'][kind]:6d} -> {report['keypoint_errors'][kind]:6d}")
else:
    print("no second results file to compare with (set RSN_RESULTS_B)")
print("figures in", FIGURES)
