"""Read a Hydra multirun sweep back for comparison (pure Python: no Lightning, pandas optional).

Each job folder of ``logs/train/multiruns/<time>/`` holds the overrides Hydra applied
(``.hydra/overrides.yaml``) and, with ``logger=csv`` or ``logger=many_loggers``, the metrics the run
logged (``csv/metrics.csv``). :func:`load_sweep` turns the folder into one record per job: the swept
values, the last and the best validation metrics and the AP curve; :func:`sweep_table` prints them
sorted by a metric, and :func:`plot_sweep` draws the curves (matplotlib, the ``notebooks`` extra).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class SweepRun:
    job: str
    path: Path
    overrides: dict[str, str]
    last: dict[str, float] = field(default_factory=dict)  # the final validation's metrics
    best: dict[str, float] = field(default_factory=dict)  # the validation with the best monitored metric
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric) per validation
    problem: str | None = None  # why a job has no metrics (failed, or not logged as CSV)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{job}: no .hydra/overrides.yaml; not a Hydra job folder")
    items = yaml.safe_load(path.read_text()) or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a list of 'key=value' overrides, got {type(items).__name__}")
    pairs = (str(o).split("=", 1) for o in items if "=" in str(o))
    return {k.lstrip("+~"): v for k, v in pairs}


def load_run(job: Path, metric: str = "val/AP", mode: str = "max") -> SweepRun:
    """One job folder -> :class:`SweepRun`. A job without ``csv/metrics.csv`` or without any row
    carrying ``metric`` is returned with ``problem`` set, never dropped silently."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    job = Path(job)
    run = SweepRun(job=job.name, path=job, overrides=_overrides(job))
    metrics = job / "csv" / "metrics.csv"
    if not metrics.is_file():
        run.problem = "no csv/metrics.csv (run with logger=csv or logger=many_loggers; or the job failed)"
        return run
    with metrics.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if _float(r.get(metric)) is not None]
    if not rows:
        run.problem = f"no row with {metric!r} in {metrics} (no validation ran)"
        return run

    def values(row):
        return {k: v for k, v in ((k, _float(x)) for k, x in row.items() if k.startswith("val/")) if v is not None}

    run.curve = [(int(float(r.get("epoch") or 0)), _float(r[metric])) for r in rows]
    run.last = values(rows[-1])
    pick = max if mode == "max" else min
    run.best = values(pick(rows, key=lambda r: _float(r[metric])))
    return run


def load_sweep(folder, metric: str = "val/AP", mode: str = "max") -> list[SweepRun]:
    """Every job of a multirun folder (sub-folders with ``.hydra/``), in job order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sweep folder {folder} does not exist")
    jobs = sorted((p for p in folder.iterdir() if (p / ".hydra").is_dir()),
                  key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    if not jobs:
        raise FileNotFoundError(f"{folder}: no job folders with a .hydra/ inside (is it a Hydra multirun?)")
    return [load_run(job, metric, mode) for job in jobs]


def swept_keys(runs: list[SweepRun]) -> list[str]:
    """The overrides whose value differs between jobs (what the sweep varied)."""
    keys = sorted({k for r in runs for k in r.overrides})
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def sweep_table(runs: list[SweepRun], metric: str = "val/AP", columns=("val/AP50", "val/AP75", "val/AR"),
                which: str = "best") -> str:
    """Plain-text table of the jobs, best ``metric`` first; failed jobs last with their reason."""
    keys = swept_keys(runs)
    header = ["job", *keys, metric, *columns]
    scored = [(r, r.best if which == "best" else r.last) for r in runs]
    done = sorted(((r, st) for r, st in scored if not r.problem and metric in st), key=lambda rs: -rs[1][metric])
    failed = [f"{r.job}: {r.problem}" for r, st in scored if r.problem or metric not in st]
    body = [[r.job, *(r.overrides.get(k, "") for k in keys),
             *(f"{st[c]:.4f}" if c in st else "-" for c in (metric, *columns))] for r, st in done]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in (header, *body)]
    return "\n".join(lines + failed)


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
