"""Sweep rows (the columns of ``runs.sweep_rows``) from wandb runs: offline or synced run folders read
without an account, or a project through the wandb API; a registry preset's null keys are read from the
model registry."""

from __future__ import annotations

from pathlib import Path

from rsn_lightning.runs.sweep_rows import normalise_row
from rsn_lightning.runs.wandb_files import read_wandb_run_file


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
    return normalise_row(row)


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
