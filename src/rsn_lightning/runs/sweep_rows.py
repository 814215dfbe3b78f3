"""The rows of a sweep as its tables and figures read them: one dict per job with the columns of the sweep
summary contract (numbers as floats, unknown values as None), from a sweep folder's ``summary.csv``, its
job results or its jobs' CSV logs; the swept columns, the Pareto front and a plain-text table."""

from __future__ import annotations

import math
from pathlib import Path

from rsn_lightning.runs import sweeps

NUMERIC = ("num_stages", "width_mult", "params_m", "gflops", "final_AP", "final_AR", "best_AP", "best_AR",
           "final_PCKh", "best_PCKh", "images_per_s", "wall_time_s")


def finite_number(value):
    """A finite float of ``value`` (a number or its text), else None (empty, not a number, NaN, Inf)."""
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def normalise_row(row: dict) -> dict:
    """A row with numbers as floats, unknown values as None and ``input_size`` as ``WxH``."""
    out = {k: (None if v == "" else v) for k, v in row.items()}  # an empty CSV cell is an unknown value
    for key in NUMERIC:
        if key in out:
            out[key] = finite_number(out[key])
    if isinstance(out.get("input_size"), (list, tuple)):
        out["input_size"] = "x".join(str(int(v)) for v in out["input_size"])
    return out


def load_sweep_rows(folder) -> list[dict]:
    """One dict per job of a sweep folder, with the columns of the sweep summary contract.

    In order of preference: the folder's ``summary.csv``, else the same rows rebuilt from each job's
    ``job_result.json`` (a sweep whose launching process did not live to its end; both
    ``sweeps.load_summary``), and last the jobs' CSV logs (``sweeps.load_sweep``: AP only, no cost columns)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sweep folder {folder} does not exist")
    if (folder / sweeps.SUMMARY_CSV).is_file() or any((p / sweeps.JOB_RESULT).is_file() for p in folder.iterdir()):
        return [normalise_row(r) for r in sweeps.load_summary(folder)]
    rows = []
    for run in sweeps.load_sweep(folder):
        row = {"job": run.job, "status": "failed" if run.problem else "ok", "error": run.problem,
               "output_dir": str(run.path), **run.overrides}
        for metric in ("AP", "AR", "PCKh"):
            row[f"final_{metric}"] = run.last.get(f"val/{metric}")
            row[f"best_{metric}"] = run.best.get(f"val/{metric}")
        rows.append(normalise_row(row))
    return rows


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


def ap_key(rows):
    """The accuracy column of the rows: ``final_AP``, else ``final_PCKh`` (MPII jobs)."""
    return "final_AP" if any(r.get("final_AP") is not None for r in rows) else "final_PCKh"


def swept_columns(rows) -> list[str]:
    """The override columns whose value differs between jobs (dotted keys such as model.optimizer.lr)."""
    keys = sorted({k for r in rows for k in r if "." in k or "/" in k})
    return [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]


def sweep_table_text(rows) -> str:
    """Plain-text table of the jobs, best AP first; failed jobs last with their error."""
    metric = ap_key(rows)
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
