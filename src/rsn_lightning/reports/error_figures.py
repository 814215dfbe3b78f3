"""The figures of an error analysis (``evaluation.error_analysis`` reports): error types per keypoint,
AP after each correction, OKS of the matched detections by person size, and two reports side by side.
Each ``plot_*`` draws on an axis (a new figure when none is given) and returns it; ``*_figures`` and
:func:`write_analysis` write PNG files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rsn_lightning.evaluation.error_analysis import analyze
from rsn_lightning.evaluation.keypoint_errors import CORRECTIONS, LABELS, AnalysisParams
from rsn_lightning.reports.axes import axis_or_new, legend_if_drawn, save_png

ERROR_COLORS = {"good": "#1ED88B", "jitter": "#8C4646", "inversion": "#D96459", "swap": "#F2AE72",
                "miss": "#F2E394", "score": "#4F82BD", "background_fp": "#8063A3", "false_negatives": "seagreen"}


def plot_keypoint_errors(report: dict, ax=None, share: bool = True):
    """Stacked bars per keypoint: the share (or count) of good/jitter/inversion/swap/miss."""
    ax = axis_or_new(ax, (9, 4))
    per = report["per_keypoint"]
    names = list(per)
    counts = np.array([[per[n][t] for t in LABELS] for n in names], np.float64)
    if share:
        counts = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    bottom = np.zeros(len(names))
    for i, t in enumerate(LABELS):
        ax.bar(range(len(names)), counts[:, i], bottom=bottom, color=ERROR_COLORS[t], label=t, edgecolor="k", lw=0.3)
        bottom += counts[:, i]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    ax.set_ylabel("share of labelled keypoints" if share else "keypoints")
    total = report["keypoint_errors"]
    ax.set_title("keypoint errors of matched detections: " + ", ".join(f"{t} {total[t]}" for t in LABELS),
                 fontsize="small")
    ax.legend(fontsize="small", ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return ax


def plot_ap_improvement(report: dict, ax=None, metric: str = "AP"):
    """Bars of the AP gained by correcting each error type: cumulatively (in coco-analyze's order)
    and each alone."""
    ax = axis_or_new(ax, (8, 4))
    cumulative = report["ap_after_correction"]
    gains = [cumulative[i + 1][metric] - cumulative[i][metric] for i in range(len(cumulative) - 1)]
    alone = report["ap_improvement_alone"]
    x = np.arange(len(CORRECTIONS))
    colors = [ERROR_COLORS[c] for c in CORRECTIONS]
    ax.bar(x - 0.2, gains, 0.4, color=colors, edgecolor="k", label="cumulative (left to right)")
    ax.bar(x + 0.2, [alone[c][metric] for c in CORRECTIONS], 0.4, color=colors, edgecolor="k", hatch="//",
           label="alone")
    ax.set_xticks(x, [c.replace("_", " ") for c in CORRECTIONS], rotation=20)
    ax.set_ylabel(f"{metric} gained")
    ax.set_title(f"{metric} {cumulative[0][metric]:.3f} -> {cumulative[-1][metric]:.3f} after correcting everything",
                 fontsize="small")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_oks_by_size(report: dict, ax=None, bins: int = 20):
    """Histogram of the OKS of each detection matched to a person (at OKS >= 0.1), by person size
    (COCO's ranges: small < 32^2 <= medium < 96^2 <= large)."""
    ax = axis_or_new(ax, (6, 4))
    edges = np.linspace(0, 1, bins + 1)
    sizes = {"small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, math.inf)}
    for label, (lo, hi) in sizes.items():
        oks = [m["oks"] for m in report["matches"] if lo <= m["area"] < hi]
        if oks:
            ax.hist(oks, edges, histtype="step", lw=2, label=f"{label} ({len(oks)}, median {np.median(oks):.2f})")
    ax.set_xlabel("OKS with the matched person")
    ax.set_ylabel("detections")
    legend_if_drawn(ax, loc="upper left")
    return ax


def error_analysis_figures(report: dict, out_dir) -> list[Path]:
    """Write keypoint_errors.png, ap_improvement.png and oks_by_size.png into ``out_dir``."""
    out = Path(out_dir)
    return [save_png(plot_keypoint_errors(report), out / "keypoint_errors.png"),
            save_png(plot_ap_improvement(report), out / "ap_improvement.png"),
            save_png(plot_oks_by_size(report), out / "oks_by_size.png")]


def compare_error_analyses(reports: dict, path=None):
    """Two (or more) reports side by side: keypoint error counts by type, and the AP after each
    cumulative correction. ``reports`` maps a label to a report; writes ``path`` when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(reports)
    for i, (label, rep) in enumerate(reports.items()):
        counts = rep["keypoint_errors"]
        left.bar(np.arange(len(LABELS)) + (i - (len(reports) - 1) / 2) * width, [counts[t] for t in LABELS], width,
                 label=label)
        steps = rep["ap_after_correction"]
        right.plot(range(len(steps)), [s["AP"] for s in steps], marker="o", label=label)
    left.set_xticks(range(len(LABELS)), LABELS)
    left.set_ylabel("keypoints")
    left.set_title("keypoint labels of matched detections", fontsize="small")
    left.legend(fontsize="small")
    right.set_xticks(range(len(CORRECTIONS) + 1), ["original", *(c.replace("_", " ") for c in CORRECTIONS)],
                     rotation=30, ha="right")
    right.set_ylabel("AP")
    right.set_title("AP after correcting each error type (cumulative)", fontsize="small")
    right.grid(alpha=0.3)
    right.legend(fontsize="small")
    if path is not None:
        save_png(left, path)
    return fig


def write_analysis(gt, results, out_dir, params: AnalysisParams | None = None, figures: bool = True) -> dict:
    """Run :func:`analyze`, write ``out_dir/error_analysis.json`` and, with ``figures``, the PNGs
    (:func:`error_analysis_figures`). Returns the report with ``"files"`` listing what was written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = analyze(gt, results, params)
    files = [str(out / "error_analysis.json")]
    if figures:
        files += [str(p) for p in error_analysis_figures(report, out)]
    report["files"] = files
    (out / "error_analysis.json").write_text(json.dumps(report, indent=1))
    return report
