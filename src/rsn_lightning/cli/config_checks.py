"""Config values checked at the door: before any data is read or any network built, every value the
apps use is checked, and all problems are reported at once, each naming its key, the value given and
the accepted range. Without this, ``data.batch_size=-4`` reported "Invalid learning rate",
``data.input_size=[0,0]`` a ZeroDivisionError, a wrong ``model.net.num_keypoints`` a tensor size
mismatch inside the training step, and an unknown decoding method failed only after training. The
codec's encode/decode pair is checked here too (``codec.HeatmapCodec``), and keys that moved to the
codec group are named with their new place.

Also here: the ``ckpt_path=last`` resolution (the run folder's last checkpoint, or an error saying where
it looked) and the checks on a checkpoint's recorded architecture (a tampered ``width_mult=4000``
would otherwise try to allocate hundreds of GB).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rsn_lightning.cli.config_network import check_codec, check_model
from rsn_lightning.cli.config_run import (
    check_checkpoint_folder,
    check_ckpt_path,
    check_data,
    check_predict,
    check_trainer,
)
from rsn_lightning.cli.config_values import Problems, get_value
from rsn_lightning.errors import ConfigError, UserFacingError


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def exit_on_bad_input(main):
    """Wrap an app's task function: a UserFacingError ends the process with its message alone (exit
    status 2), not a traceback; any other exception keeps its traceback (a bug to report). In a
    multirun the error propagates as usual, so the sweep records that job as failed."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserFacingError as err:
            if _in_multirun():
                raise  # a sweep records the failed job and goes on; SystemExit would end it
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped


def validate_config(cfg: DictConfig, app: str) -> None:
    """Check the values ``app`` ('train', 'eval' or 'predict') uses; ConfigError listing every problem."""
    from omegaconf.errors import MissingMandatoryValue

    from rsn_lightning.cli.common import check_config

    try:
        check_config(cfg)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key} is required (no default): pass {err.full_key}=...") from None
    p = Problems()
    if app == "predict":
        check_predict(cfg, p)
    else:
        check_data(cfg, p)
        check_codec(cfg, p)
        check_model(cfg, p, network_from_config=app == "train")
        check_trainer(cfg, p)
        if app == "train" and cfg.get("train", True):
            check_checkpoint_folder(cfg, p)
    check_ckpt_path(cfg, p, allow_last=app == "train")
    if p:
        raise ConfigError(f"{len(p)} invalid config value(s), nothing was run:\n  " + "\n  ".join(p))


def resolve_last_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path`` with ``last`` replaced by this run folder's last checkpoint; ConfigError saying
    where it looked when there is none (Lightning would silently start from scratch)."""
    path = cfg.get("ckpt_path")
    if path != "last":
        return path
    folders = []
    for conf in (get_value(cfg, "callbacks") or {}).values():
        if isinstance(conf, DictConfig) and conf.get("dirpath") and conf.get("save_last"):
            folders.append(Path(str(conf.dirpath)))
    folders = folders or [Path(str(cfg.paths.output_dir)) / "checkpoints"]
    for folder in dict.fromkeys(folders):
        candidate = folder / "last.ckpt"
        if candidate.is_file():
            return str(candidate)
    looked = ", ".join(str(f / "last.ckpt") for f in dict.fromkeys(folders))
    raise ConfigError(
        f"ckpt_path=last: no last checkpoint at {looked}. Resume in the run's own folder: "
        "hydra.run.dir=<that run's output_dir> ckpt_path=last (or pass ckpt_path=<file>)")
