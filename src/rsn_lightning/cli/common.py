"""Helpers shared by the Hydra apps: the config resolvers, config location, group instantiation, result tables."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsn_lightning.allocator import keep_freed_memory
from rsn_lightning.training.precision import checked_precision, cpu_mixed_precision
from rsn_lightning.training.slurm_submit import slurm_count

log = logging.getLogger(__name__)


def sweep_folder(sweep_name, timestamp: str) -> str:
    """``${sweep_folder:${sweep_name},${now:...}}``: a named sweep's folder is its name (so that the same
    command finds it again and resumes it), an unnamed one's the time it started."""
    return str(sweep_name) if sweep_name not in (None, "") else timestamp


def register_resolvers() -> None:
    """Register the resolvers the configs use, before Hydra composes them: each Hydra app's main module
    calls it, and so do the job processes that Hydra's launchers start (cli/sweep_summary.py, the SLURM
    launcher in hydra_plugins), which compose their job's config again. Registering twice is a no-op."""
    resolvers = {
        # ``precision: ${cpu_mixed_precision:}`` in a config picks per machine (the quickstart uses it)
        "cpu_mixed_precision": cpu_mixed_precision,
        # the folder the command was typed in: ``${hydra:runtime.cwd}`` is not yet set when Hydra resolves a
        # multirun's sweep folder, so paths built on it break ``rsn-train -m``
        "cwd": os.getcwd,
        "sweep_folder": sweep_folder,
        "slurm_count": slurm_count,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def config_dir() -> str:
    """Where the Hydra configs are: RSN_CONF_DIR if set, else the ``conf/`` shipped inside the installed
    package (a wheel or ``pip install .``: setup.py copies the repository's conf/ there), else the
    checkout's top-level ``conf/`` (editable install)."""
    env = os.environ.get("RSN_CONF_DIR")
    package_dir = Path(__file__).resolve().parents[1]
    candidates = [Path(env)] if env else [package_dir / "conf", package_dir.parents[1] / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return str(path)
    raise FileNotFoundError(
        f"Hydra configs not found (no train.yaml in {', '.join(map(str, candidates))}). "
        + ("RSN_CONF_DIR must point at a conf/ folder like the repository's." if env else
           "Install the package from its wheel or with pip install ., or editable from its clone "
           "(bash scripts/setup.sh), or point RSN_CONF_DIR at a conf/ folder.")
    )


def check_config(cfg: DictConfig) -> None:
    """Fail at start on a missing required value (``???``), before any data is read."""
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    OmegaConf.to_container(plain, resolve=True, throw_on_missing=True)


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a callbacks/logger group (a dict of named configs)."""
    from hydra.utils import instantiate

    objects = []
    if not group:
        return objects
    for name, conf in group.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("instantiating %s <%s>", name, conf._target_)
            objects.append(instantiate(conf))
    return objects


def instantiate_trainer(trainer_cfg: DictConfig, **kwargs):
    """The Lightning Trainer of a ``trainer`` config group, with a precision the device computes natively
    (an emulated bf16/fp16 request falls back to float32 with a warning: see training/precision.py)."""
    from hydra.utils import instantiate

    precision = checked_precision(trainer_cfg.get("precision", "32-true"), trainer_cfg.get("accelerator", "auto"))
    return instantiate(trainer_cfg, precision=precision, **kwargs)


def format_metrics_table(stats: dict, title: str = "COCO keypoint evaluation") -> str:
    """A plain-text table of metrics (COCO's 10 stats first, in pycocotools' order)."""
    from rsn_lightning.evaluation.coco_eval import STAT_NAMES

    names = [n for n in STAT_NAMES if n in stats] + sorted(k for k in stats if k not in STAT_NAMES)
    width = max(len(n) for n in names) if names else 4
    lines = [title, "-" * (width + 10)]
    lines += [f"{n:<{width}}  {float(stats[n]):7.4f}" for n in names]
    return "\n".join(lines)


def start_run(cfg: DictConfig) -> None:
    """What every app does first: fail on missing values, keep freed memory in the process when the
    trainer computes on the CPU (allocator.py; ``trainer.accelerator``, ``auto`` when there is none),
    then seed everything (data workers too)."""
    import pytorch_lightning as pl

    check_config(cfg)
    trainer_cfg = cfg.get("trainer") or {}
    log.info("memory allocator: %s", keep_freed_memory(trainer_cfg.get("accelerator", "auto")))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)


def print_report(metrics: dict, paths: dict, title: str) -> None:
    """The validation table (COCO stats or PCKh) and where the outputs went."""
    stats = {k.split("/", 1)[1]: v for k, v in metrics.items()
             if k.startswith("val/") and k != "val/loss" and "per_keypoint" not in k}
    if stats:
        print(format_metrics_table(stats, title))
    for name, path in paths.items():
        print(f"{name:>11}: {path}")
