"""Read a Hydra multirun sweep back for comparison (pure Python: no Lightning, no matplotlib).

Each job folder of ``logs/train/multiruns/<time>/`` holds the overrides Hydra applied
(``.hydra/overrides.yaml``) and, with ``logger=csv`` or ``logger=many_loggers``, the metrics the run
logged (``csv/metrics.csv``). :func:`load_sweep` turns the folder into one record per job: the swept
values, the last and the best validation metrics and the AP curve; :func:`sweep_table` prints them
sorted by a metric (``reports.sweep_figures.plot_sweep`` draws the curves).
"""

from __future__ import annotations

import csv
import json
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
    return _override_pairs(items)


def _override_pairs(items) -> dict[str, str]:
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


def _sweep_jobs(folder: Path, with_result: bool = False) -> list[Path]:
    """The job folders of a multirun (sub-folders with .hydra/, or with a job_result.json where
    ``with_result``), in job order."""
    def is_job(p: Path) -> bool:
        return (p / ".hydra").is_dir() or (with_result and (p / JOB_RESULT).is_file())

    jobs = sorted((p for p in folder.iterdir() if is_job(p)),
                  key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    if not jobs:
        raise FileNotFoundError(f"{folder}: no job folders with a .hydra/ inside (is it a Hydra multirun?)")
    return jobs


def load_sweep(folder, metric: str = "val/AP", mode: str = "max") -> list[SweepRun]:
    """Every job of a multirun folder (sub-folders with ``.hydra/``), in job order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sweep folder {folder} does not exist")
    return [load_run(job, metric, mode) for job in _sweep_jobs(folder)]


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


# --- the sweep summary: one job_result.json per job, summary.csv/summary.md per sweep ------------------

JOB_RESULT = "job_result.json"
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
_JOB_INFO = ["model", "input_size", "num_stages", "width_mult", "prm", "params_m", "gflops"]
_RUN_INFO = ["images_per_s", "wall_time_s", "error", "output_dir"]


def job_folder_of(path) -> Path | None:
    """The Hydra job folder holding ``path`` (itself or its nearest ancestor with .hydra/overrides.yaml)."""
    if not path:
        return None
    path = Path(path).resolve()
    return next((p for p in (path, *path.parents) if (p / ".hydra" / "overrides.yaml").is_file()), None)


def sweep_folder_of(path) -> Path | None:
    """The multirun folder above ``path`` (the nearest ancestor with Hydra's ``multirun.yaml``)."""
    path = Path(path).resolve()
    return next((p for p in path.parents if (p / "multirun.yaml").is_file()), None)


def _yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not readable YAML ({e})") from e
    return data if isinstance(data, dict) else {}


def _sweeper_params(hydra_cfg: dict) -> list[str]:
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    return [str(k) for k in params] if isinstance(params, dict) else []


def sweep_override_keys(sweep_dir) -> list[str]:
    """What a multirun varies, from its ``multirun.yaml``: the keys given several values on the command line
    (``model.net.num_stages=1,2``, ``range(...)``, ...) and the sweeper's ``params`` (hparams_search)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = _yaml(Path(sweep_dir) / "multirun.yaml").get("hydra") or {}
    typed = (hydra_cfg.get("overrides") or {}).get("task") or []
    parsed = OverridesParser.create().parse_overrides([str(o) for o in typed])
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()] + _sweeper_params(hydra_cfg)
    return list(dict.fromkeys(keys))


def _short_names(keys: list[str]) -> dict[str, str]:
    """``model.net.num_stages`` -> ``num_stages``, unless two swept keys share their last part."""
    leaves = [k.split(".")[-1] for k in keys]
    return {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves)}


def job_identity(job_dir) -> dict:
    """How one job of a sweep is named where runs are compared (wandb): ``name`` from its swept values
    (``num_stages=2,width_mult=0.5``; the experiment's name when nothing is swept), ``group`` the user's
    ``sweep_name`` or the sweep folder's name, ``tags`` the experiment and the swept values, ``swept``
    the swept values themselves. Read from the job's .hydra/ files, so a later ``rsn-eval`` of the job's
    checkpoint finds the same name and group."""
    job = job_folder_of(job_dir)
    if job is None:
        raise FileNotFoundError(f"{job_dir}: not inside a Hydra job folder (no .hydra/overrides.yaml above it)")
    overrides = _overrides(job)
    config = _yaml(job / ".hydra" / "config.yaml")
    hydra_cfg = _yaml(job / ".hydra" / "hydra.yaml").get("hydra") or {}
    sweep = sweep_folder_of(job)
    keys = (sweep_override_keys(sweep) if sweep else []) + _sweeper_params(hydra_cfg)
    swept = {k: overrides[k] for k in dict.fromkeys(keys) if k in overrides}
    short = _short_names(list(swept))
    experiment = ((hydra_cfg.get("runtime") or {}).get("choices") or {}).get("experiment")
    label = ",".join(f"{short[k]}={v}" for k, v in swept.items())
    sweep_name = config.get("sweep_name")
    return {
        "name": label or experiment or str(config.get("task_name") or job.name),
        "group": str(sweep_name) if sweep_name else (sweep.name if sweep else None),
        "tags": [*([experiment] if experiment else []), *(f"{short[k]}={v}" for k, v in swept.items())],
        "swept": swept,
    }


def _metric_names(results: list[dict]) -> list[str]:
    """AP/AR for COCO-style jobs, PCKh when the jobs only report PCKh (MPII)."""
    reported = {k for r in results for part in ("final", "best") for k in (r.get(part) or {})}
    return ["PCKh"] if "PCKh" in reported and "AP" not in reported else ["AP", "AR"]


def summary_columns(swept: list[str], metrics: list[str]) -> list[str]:
    return ["job", "status", *swept, *_JOB_INFO, *(f"final_{m}" for m in metrics),
            *(f"best_{m}" for m in metrics), *_RUN_INFO]


def _job_result(job: Path) -> dict:
    path = job / JOB_RESULT
    if not path.is_file():
        return {"status": "failed", "error": f"no {JOB_RESULT}: the job was killed, or has not finished"}
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return {"status": "failed", "error": f"{path} is not valid JSON ({e})"}
    return result if isinstance(result, dict) else {"status": "failed", "error": f"{path}: not a JSON object"}


def summary_rows(folder) -> tuple[list[str], list[dict]]:
    """(columns, one row per job) of a multirun folder, from each job's ``job_result.json``; a job
    without one (killed, still running) is a ``failed`` row saying so. The overrides are Hydra's
    ``.hydra/overrides.yaml``, or the ``overrides`` the job result records where a job has no .hydra/."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sweep folder {folder} does not exist")
    jobs = _sweep_jobs(folder, with_result=True)
    results = [_job_result(j) for j in jobs]
    overrides = [_overrides(j) if (j / ".hydra").is_dir() else _override_pairs(r.get("overrides") or [])
                 for j, r in zip(jobs, results)]
    swept = [k for k in sweep_override_keys(folder) if any(k in o for o in overrides)]
    if not (folder / "multirun.yaml").is_file():  # fall back to what differs between the jobs
        keys = sorted({k for o in overrides for k in o})
        swept = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    metrics = _metric_names(results)
    columns = summary_columns(swept, metrics)
    rows = []
    for job, job_overrides, result in zip(jobs, overrides, results):
        size = result.get("input_size")
        row = {"job": job.name, "status": result.get("status") or "failed", **{k: job_overrides.get(k) for k in swept},
               **{k: result.get(k) for k in _JOB_INFO}, **{k: result.get(k) for k in _RUN_INFO}}
        row["input_size"] = f"{size[0]}x{size[1]}" if isinstance(size, (list, tuple)) and len(size) == 2 else None
        row["output_dir"] = result.get("output_dir") or str(job)
        for part in ("final", "best"):
            for m in metrics:
                row[f"{part}_{m}"] = (result.get(part) or {}).get(m)
        rows.append({c: row.get(c) for c in columns})
    return columns, rows


_INT_COLUMNS = {"num_stages"}
_TEXT_COLUMNS = {"job", "status", "model", "input_size", "prm", "error", "output_dir"}


def _typed(column: str, text: str, swept: set[str]):
    if text == "":
        return None
    if column == "prm" and text in ("True", "False"):  # a bool, or the name of a PRM placement
        return text == "True"
    if column in swept or column in _TEXT_COLUMNS:
        return text
    if column in _INT_COLUMNS:
        return int(float(text))
    return float(text)


def write_summary(folder) -> tuple[list[str], list[dict]]:
    """Write ``summary.csv`` and ``summary.md`` into the sweep folder; returns (columns, rows)."""
    folder = Path(folder)
    columns, rows = summary_rows(folder)
    with (folder / SUMMARY_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    (folder / SUMMARY_MD).write_text(summary_markdown(columns, rows) + "\n")
    return columns, rows


def load_summary(folder) -> list[dict]:
    """The rows of a sweep's ``summary.csv`` (numbers as numbers, empty cells as None; swept values as the
    strings Hydra applied), or the same rows rebuilt from the job folders when there is no summary.csv."""
    folder = Path(folder)
    path = folder / SUMMARY_CSV
    if not path.is_file():
        return summary_rows(folder)[1]
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if columns[:2] != ["job", "status"]:
            raise ValueError(f"{path}: expected the columns to start with job,status; got {columns[:2]}")
        first_info = columns.index("model") if "model" in columns else len(columns)
        swept = set(columns[2:first_info])
        return [{c: _typed(c, row.get(c) or "", swept) for c in columns} for row in reader]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def summary_markdown(columns: list[str], rows: list[dict]) -> str:
    """The summary as a Markdown table (errors shortened to their last line)."""
    def cells(row):
        return [_cell(row[c]).strip().splitlines()[-1][:200].replace("|", "\\|") if _cell(row[c]).strip() else ""
                for c in columns]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cells(r)) + " |" for r in rows])


def summary_text(columns: list[str], rows: list[dict]) -> str:
    """The summary as aligned plain text for the terminal (no output folder; errors on their own lines)."""
    shown = [c for c in columns if c not in ("error", "output_dir")]
    body = [[_cell(r[c]) for c in shown] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(shown, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in (shown, *body)]
    errors = [f"job {r['job']} failed: {str(r['error']).strip().splitlines()[-1]}" for r in rows if r.get("error")]
    return "\n".join(lines + errors)
