"""The figures of the analysis notebooks as functions that also write PNGs (matplotlib, Agg), so a sweep
or a results file can be analysed without Jupyter. Each ``plot_*`` draws on an axis (a new figure
when none is given) and returns it; each ``*_figures`` writes PNG files and returns their paths.

- error analysis (``evaluation.error_analysis`` reports): error types per keypoint, AP after each
  correction, OKS of the matched detections by person size, and two reports side by side;
- sweeps (rows of a sweep's ``summary.csv``, its job folders, or wandb runs): AP against GFLOPs and
  against training images/s with the Pareto front, AP against stages, width, input size and PRM, with
  the paper's COCO val numbers drawn beside and labelled as the paper's;
- one person through the network: the heatmaps of every stage and unit, and the PRM's attention.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rsn_lightning.evaluation.error_analysis import CORRECTIONS, LABELS

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
ERROR_COLORS = {"good": "#1ED88B", "jitter": "#8C4646", "inversion": "#D96459", "swap": "#F2AE72",
                "miss": "#F2E394", "score": "#4F82BD", "background_fp": "#8063A3", "false_negatives": "seagreen"}


def _axis(ax, figsize=(7, 4)):
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=figsize)[1]
    return ax


def _legend(ax, **kwargs):
    if ax.get_legend_handles_labels()[0]:  # nothing drawn (no job records the value): no empty legend
        ax.legend(fontsize="small", **kwargs)


def _save(ax, path) -> Path:
    import matplotlib.pyplot as plt

    fig = ax.figure
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- error analysis --------------------------------------------------------------------------------
def plot_keypoint_errors(report: dict, ax=None, share: bool = True):
    """Stacked bars per keypoint: the share (or count) of good/jitter/inversion/swap/miss."""
    ax = _axis(ax, (9, 4))
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
    ax = _axis(ax, (8, 4))
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
    ax = _axis(ax, (6, 4))
    edges = np.linspace(0, 1, bins + 1)
    sizes = {"small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, math.inf)}
    for label, (lo, hi) in sizes.items():
        oks = [m["oks"] for m in report["matches"] if lo <= m["area"] < hi]
        if oks:
            ax.hist(oks, edges, histtype="step", lw=2, label=f"{label} ({len(oks)}, median {np.median(oks):.2f})")
    ax.set_xlabel("OKS with the matched person")
    ax.set_ylabel("detections")
    _legend(ax, loc="upper left")
    return ax


def error_analysis_figures(report: dict, out_dir) -> list[Path]:
    """Write keypoint_errors.png, ap_improvement.png and oks_by_size.png into ``out_dir``."""
    out = Path(out_dir)
    return [_save(plot_keypoint_errors(report), out / "keypoint_errors.png"),
            _save(plot_ap_improvement(report), out / "ap_improvement.png"),
            _save(plot_oks_by_size(report), out / "oks_by_size.png")]


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
        _save(left, path)
    return fig


# -- sweeps ----------------------------------------------------------------------------------------
NUMERIC = ("num_stages", "width_mult", "params_m", "gflops", "final_AP", "final_AR", "best_AP", "best_AR",
           "final_PCKh", "best_PCKh", "images_per_s", "wall_time_s")


def _number(value):
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _normalise_row(row: dict) -> dict:
    out = {k: (None if v == "" else v) for k, v in row.items()}  # an empty CSV cell is an unknown value
    for key in NUMERIC:
        if key in out:
            out[key] = _number(out[key])
    if isinstance(out.get("input_size"), (list, tuple)):
        out["input_size"] = "x".join(str(int(v)) for v in out["input_size"])
    return out


def load_sweep_rows(folder) -> list[dict]:
    """One dict per job of a sweep folder, with the columns of the sweep summary contract.

    In order of preference: the folder's ``summary.csv``, else the same rows rebuilt from each job's
    ``job_result.json`` (a sweep whose launching process did not live to its end; both
    ``sweeps.load_summary``), and last the jobs' CSV logs (``sweeps.load_sweep``: AP only, no cost columns)."""
    from rsn_lightning.evaluation import sweeps

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sweep folder {folder} does not exist")
    if (folder / sweeps.SUMMARY_CSV).is_file() or any((p / sweeps.JOB_RESULT).is_file() for p in folder.iterdir()):
        return [_normalise_row(r) for r in sweeps.load_summary(folder)]
    rows = []
    for run in sweeps.load_sweep(folder):
        row = {"job": run.job, "status": "failed" if run.problem else "ok", "error": run.problem,
               "output_dir": str(run.path), **run.overrides}
        for metric in ("AP", "AR", "PCKh"):
            row[f"final_{metric}"] = run.last.get(f"val/{metric}")
            row[f"best_{metric}"] = run.best.get(f"val/{metric}")
        rows.append(_normalise_row(row))
    return rows


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _row_from_wandb(name: str, config: dict, summary: dict) -> dict:
    config = _flatten(config)
    row = {"job": name, "status": "ok" if "val/AP" in summary or "val/PCKh" in summary else "failed"}
    net = {k.removeprefix("model.net."): v for k, v in config.items() if k.startswith("model.net.")}
    if net.get("name") is not None:  # a registry preset (conf/model): its null keys are the preset's values
        from rsn_lightning.models.registry import preset_config

        try:
            net = {**preset_config(net["name"]), **{k: v for k, v in net.items() if v is not None}}
        except ValueError:
            pass  # a preset this version does not know: the logged values only
    row.update(num_stages=net.get("num_stages"), width_mult=net.get("width_mult"),
               prm=net.get("prm", net.get("use_prm")), model=config.get("model.name") or net.get("name"),
               input_size=config.get("data.input_size"))
    for metric in ("AP", "AR", "PCKh"):
        row[f"final_{metric}"] = summary.get(f"val/{metric}")
    row["gflops"] = summary.get("model/gflops", config.get("gflops"))
    # the job's mean (JobRecord's summary), else ThroughputMonitor's last rate: all devices, else one
    row["images_per_s"] = next((summary[k] for k in ("images_per_s", "train/samples_per_sec",
                                                     "train/device/samples_per_sec") if k in summary), None)
    return _normalise_row(row)


def _wandb_log_records(path: Path):
    """The protobuf records of a wandb run file (``run-<id>.wandb``: a LevelDB-style log of 32 KiB
    blocks after a 7-byte ``:W&B`` header; each chunk has a 7-byte header of crc, length and type
    full/first/middle/last). Offline runs keep their config and summary only there."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file (no :W&B header)")
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a run still being written: stop at its last whole record
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def read_wandb_run_file(path) -> tuple[str, dict, dict]:
    """(run name, config, final summary) of a wandb run file, e.g. an offline run's
    ``wandb/offline-run-<time>-<id>/run-<id>.wandb``, without an account or the network."""
    path = Path(path)
    name, config, summary = path.stem.removeprefix("run-"), {}, {}
    for record in _wandb_log_records(path):
        kind = record.WhichOneof("record_type")
        items = {"run": lambda r: r.run.config.update, "config": lambda r: r.config.update,
                 "summary": lambda r: r.summary.update}.get(kind)
        if items is None:
            continue
        if kind == "run" and record.run.display_name:
            name = record.run.display_name
        target = summary if kind == "summary" else config
        for item in items(record):
            key = item.key or "/".join(item.nested_key)
            if not key.startswith("_"):
                target[key] = json.loads(item.value_json)
    return name, config, summary


def load_wandb_rows(source) -> list[dict]:
    """Rows from wandb runs: a folder holding run folders (offline or synced: ``run-<id>.wandb``,
    read without an account), or an ``entity/project`` path read through the wandb API (needs a login)."""
    path = Path(source)
    if path.exists():
        files = sorted(path.rglob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"{path}: no wandb run files (run-<id>.wandb) below it")
        return [_row_from_wandb(*read_wandb_run_file(f)) for f in files]
    import wandb

    return [_row_from_wandb(r.name, dict(r.config), dict(r.summary)) for r in wandb.Api().runs(str(source))]


def pareto_front(costs, scores) -> list[int]:
    """Indices of the points no other point beats (lower or equal cost and higher or equal score,
    one of them strictly), sorted by cost."""
    pts = [(c, s, i) for i, (c, s) in enumerate(zip(costs, scores)) if c is not None and s is not None]
    front, best = [], -math.inf
    for _cost, s, i in sorted(pts, key=lambda p: (p[0], -p[1])):
        if s > best:
            front.append(i)
            best = s
    return front


def _ap_key(rows):
    return "final_AP" if any(r.get("final_AP") is not None for r in rows) else "final_PCKh"


def _label(row, keys) -> str:
    return ", ".join(f"{k.split('.')[-1]}={row.get(k)}" for k in keys) or str(row.get("job"))


def plot_accuracy_vs_cost(rows, cost: str = "gflops", ax=None, paper: bool = True, swept=()):
    """AP (final evaluation) of each job against ``cost`` (``gflops`` or ``images_per_s``) with the
    Pareto front; with ``paper`` and ``cost="gflops"`` the paper's table beside, labelled as such.
    For ``images_per_s`` the front runs the other way (more images/s is better)."""
    ax = _axis(ax)
    metric = _ap_key(rows)
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
    _legend(ax)
    return ax


def plot_ap_by_factor(rows, factor: str, ax=None, paper: bool = True):
    """AP of each job against one design factor (``num_stages``, ``width_mult``, ``input_size``,
    ``prm`` or any swept override); for ``num_stages`` the paper's RSN-50 x stages rows beside."""
    ax = _axis(ax, (5, 4))
    metric = _ap_key(rows)
    scale = 100.0 if metric == "final_AP" else 1.0
    done = [r for r in rows if r.get(metric) is not None and r.get(factor) not in (None, "")]
    values = sorted({str(r[factor]) for r in done}, key=lambda v: (_number(v) is None, _number(v) or 0, v))
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
    _legend(ax)
    return ax


def swept_columns(rows) -> list[str]:
    """The override columns whose value differs between jobs (dotted keys such as model.optimizer.lr)."""
    keys = sorted({k for r in rows for k in r if "." in k or "/" in k})
    return [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]


def sweep_table_text(rows) -> str:
    """Plain-text table of the jobs, best AP first; failed jobs last with their error."""
    metric = _ap_key(rows)
    keys = swept_columns(rows)
    cols = ["job", *keys, "model", "input_size", "gflops", "images_per_s", metric, metric.replace("final", "best")]
    ok = sorted((r for r in rows if r.get(metric) is not None), key=lambda r: -r[metric])
    bad = [r for r in rows if r.get(metric) is None]

    def cell(v):
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    body = [[cell(r.get(c)) for c in cols] for r in ok]
    widths = [max(len(x) for x in col) for col in zip(cols, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in (cols, *body)]
    return "\n".join(lines + [f"{r.get('job')}: {r.get('status')} {r.get('error') or ''}".rstrip() for r in bad])


def plot_keypoint_oks_best_worst(runs, ax=None, metric: str = "val/AP"):
    """Per keypoint, the mean OKS (``val/per_keypoint/oks/<name>``, logged at each validation) of the
    best and the worst job of a sweep by best ``metric`` (``sweeps.load_sweep`` records). Returns None
    when no job logged per-keypoint figures."""
    prefix = "val/per_keypoint/oks/"
    done = sorted((r for r in runs if r.best.get(metric) is not None), key=lambda r: r.best[metric])
    if not done or not any(k.startswith(prefix) for k in done[-1].best):
        return None
    ax = _axis(ax, (9, 3.5))
    names = [k[len(prefix):] for k in done[-1].best if k.startswith(prefix)]
    width = 0.4
    for shift, run in ((-width / 2, done[0]), (width / 2, done[-1])):
        values = [run.best.get(prefix + n, float("nan")) for n in names]
        ax.bar(np.arange(len(names)) + shift, values, width, label=f"job {run.job}: {metric} {run.best[metric]:.3f}")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    ax.set_ylabel("mean OKS")
    _legend(ax)
    return ax


def sweep_figures(rows, out_dir, paper: bool = True) -> list[Path]:
    """Write ap_vs_gflops.png, ap_vs_images_per_s.png and ap_by_<factor>.png (for each of stages,
    width, input size and PRM that the jobs record, and each swept override) into ``out_dir``."""
    out = Path(out_dir)
    swept = swept_columns(rows)
    paths = [_save(plot_accuracy_vs_cost(rows, "gflops", paper=paper, swept=swept), out / "ap_vs_gflops.png"),
             _save(plot_accuracy_vs_cost(rows, "images_per_s", paper=paper, swept=swept),
                   out / "ap_vs_images_per_s.png")]
    for factor in ("num_stages", "width_mult", "input_size", "prm", *swept):
        if any(r.get(factor) not in (None, "") for r in rows):
            name = factor.replace("/", "_")
            paths.append(_save(plot_ap_by_factor(rows, factor, paper=paper), out / f"ap_by_{name}.png"))
    return paths


# -- one person through the network ----------------------------------------------------------------
def network_maps(net, crop) -> dict:
    """Run one normalised crop ``crop`` [3, H, W] (numpy or tensor) through an RSN: ``units`` is
    [stages][units] of heatmaps [K, h, w] (coarse -> fine, the last after the PRM, as ``forward_all``),
    and with a PRM ``prm`` holds its input (``before``), ``attention`` (channel x spatial) and output
    (``after``), each [K, h, w]."""
    import torch

    x = torch.as_tensor(np.asarray(crop, np.float32))[None]
    captured = {}
    hook = None
    if getattr(net, "prm", None) is not None:
        hook = net.prm.register_forward_hook(lambda m, inp, out: captured.update(before=inp[0].detach()))
    try:
        with torch.no_grad():
            units = net.eval().forward_all(x)
            maps = {"units": [[u[0].float().numpy() for u in stage] for stage in units]}
            if "before" in captured:
                parts = net.prm.attention(captured["before"])
                maps["prm"] = {"before": captured["before"][0].numpy(), "attention": parts["attention"][0].numpy(),
                               "after": parts["output"][0].numpy()}
    finally:
        if hook is not None:
            hook.remove()
    return maps


def plot_stage_heatmaps(maps: dict, joint: int, joint_name: str = "", crop_rgb=None):
    """Grid of one joint's heatmaps: a row per stage, a column per unit (coarse -> fine)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    units = maps["units"]
    rows, cols = len(units), len(units[0])
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), squeeze=False)
    for s, stage in enumerate(units):
        for u, hm in enumerate(stage):
            ax = axes[s][u]
            if crop_rgb is not None:
                h, w = hm.shape[-2:]
                ax.imshow(crop_rgb, extent=(0, w, h, 0))
                ax.imshow(hm[joint], cmap="jet", alpha=0.55, extent=(0, w, h, 0))
            else:
                ax.imshow(hm[joint], cmap="jet")
            ax.set_title(f"stage {s + 1} unit {u + 1}" + (" (PRM)" if s == rows - 1 and u == cols - 1 and
                                                           "prm" in maps else ""), fontsize="small")
            ax.axis("off")
    fig.suptitle(f"{joint_name or f'joint {joint}'}: heatmaps coarse (left) to fine (right)", fontsize="small")
    fig.tight_layout()
    return fig


def plot_prm_attention(maps: dict, joint: int, joint_name: str = ""):
    """One joint's heatmap before the PRM, the PRM's attention (channel x spatial), and after."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7, 3))
    if "prm" not in maps:
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "this network has no PRM", ha="center")
        return fig
    for ax, key in zip(axes, ("before", "attention", "after")):
        im = ax.imshow(maps["prm"][key][joint], cmap="jet")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"{key} PRM" if key != "attention" else "attention", fontsize="small")
        ax.axis("off")
    fig.suptitle(joint_name or f"joint {joint}", fontsize="small")
    fig.tight_layout()
    return fig


def instance_oks(report: dict) -> list[dict]:
    """The matched detections of an error-analysis report, worst OKS first."""
    return sorted(report["matches"], key=lambda m: m["oks"])


def plot_instances(matches, gt: dict, results: list, image_dir, spec=None, ncols: int = 4, margin: float = 0.15):
    """A grid of matched detections (entries of a report's ``matches``): each person's box region
    with the predicted skeleton (coloured by side) and the labelled keypoints (white), titled by OKS."""
    import cv2
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from rsn_lightning.keypoints import COCO_KEYPOINTS
    from rsn_lightning.visualize import draw_pose

    spec = spec or COCO_KEYPOINTS
    anns = {a["id"]: a for a in gt["annotations"]}
    files = {i["id"]: i["file_name"] for i in gt["images"]}
    n = max(1, len(matches))
    rows = math.ceil(n / ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3 * ncols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, matches):
        ann = anns[m["annotation_id"]]
        path = Path(image_dir) / files[ann["image_id"]]
        image = cv2.imread(str(path))
        if image is None:
            raise FileNotFoundError(f"image {path} of annotation {ann['id']} not found (set the image folder)")
        det = np.asarray(results[m["result_index"]]["keypoints"], np.float64).reshape(-1, 3)
        drawn = draw_pose(image, det[None, :, :2], np.ones((1, len(det))), spec, score_thr=0.0)
        kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        for x, y, v in kp:
            if v > 0:
                cv2.circle(drawn, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1, cv2.LINE_AA)
        x, y, w, h = ann["bbox"]
        x0, y0 = int(max(0, x - margin * w)), int(max(0, y - margin * h))
        x1, y1 = int(min(drawn.shape[1], x + (1 + margin) * w)), int(min(drawn.shape[0], y + (1 + margin) * h))
        ax.imshow(cv2.cvtColor(drawn[y0:y1, x0:x1], cv2.COLOR_BGR2RGB))
        ax.set_title(f"OKS {m['oks']:.2f} (image {ann['image_id']})", fontsize="small")
    fig.tight_layout()
    return fig


def person_crop(predictor, image_bgr, box_xywh):
    """The crop a :class:`~rsn_lightning.inference.Predictor` feeds the network for one person box:
    ``(crop_rgb uint8 [H, W, 3], normalised [3, H, W])``."""
    import cv2

    from rsn_lightning.geometry import crop_affine

    normalised, centers, scales = predictor.crops(image_bgr, np.asarray([box_xywh], np.float64))
    m = crop_affine(centers[0], scales[0], 0.0, predictor.input_size)
    crop = cv2.warpAffine(image_bgr, m, tuple(predictor.input_size), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), normalised[0]
