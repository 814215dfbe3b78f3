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

import math
import numbers
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsn_lightning.errors import ConfigError, UserFacingError
from rsn_lightning.models.checkpoint import ARCH_LIMITS, MAX_BLOCKS


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


_ABSENT = object()


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class _Problems(list):
    def check(self, ok: bool, key: str, value, expected: str) -> None:
        if not ok:
            self.append(f"{key}={value!r}: expected {expected}")

    def int_at_least(self, cfg, key: str, low: int, optional: bool = False) -> None:
        v = _get(cfg, key)
        if v is None and (optional or OmegaConf.select(cfg, key, default="absent") == "absent"):
            return
        self.check(_is_int(v) and v >= low, key, v, f"an integer >= {low}" + (" or null" if optional else ""))

    def number_in(self, cfg, key: str, low: float, high: float, optional: bool = True,
                  low_open: bool = False) -> None:
        v = _get(cfg, key)
        if v is None:
            return
        ok = _is_number(v) and (v > low if low_open else v >= low) and v <= high
        bracket = "(" if low_open else "["
        self.check(ok, key, v, f"a number in {bracket}{low}, {high}]" + (" or null" if optional else ""))

    def one_of(self, cfg, key: str, choices, optional: bool = True) -> None:
        v = _get(cfg, key)
        if v is None and optional:
            return
        self.check(v in choices, key, v, f"one of {list(choices)}")

    def input_size(self, cfg, key: str) -> None:
        from rsn_lightning.models.rsn import INPUT_DIVISOR

        v = _get(cfg, key)
        if v is None:
            return
        v = list(v) if OmegaConf.is_list(v) or isinstance(v, (list, tuple)) else v
        ok = isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x > 0 and x % INPUT_DIVISOR == 0
                                                         for x in v)
        self.check(ok, key, v, f"[W, H], two positive multiples of {INPUT_DIVISOR} (e.g. [192, 256])")

    def odd_kernels(self, cfg, key: str) -> None:
        v = _get(cfg, key)
        if v is None:
            return
        values = list(v) if OmegaConf.is_list(v) else [v]
        self.check(all(_is_int(x) and x > 0 and x % 2 == 1 for x in values), key,
                   values if OmegaConf.is_list(v) else v, "odd positive integers (Gaussian kernel sizes)")


def _check_data(cfg, p: _Problems) -> None:
    if _get(cfg, "data") is None:
        return
    p.input_size(cfg, "data.input_size")
    p.int_at_least(cfg, "data.batch_size", 1)
    p.int_at_least(cfg, "data.val_batch_size", 1, optional=True)
    p.int_at_least(cfg, "data.num_workers", 0)
    p.one_of(cfg, "data.val_boxes", ("gt", "detections"))
    p.number_in(cfg, "data.det_score_threshold", 0.0, 1.0)
    for key in ("num_train", "num_val"):
        p.int_at_least(cfg, f"data.synthetic.{key}", 1, optional=True)


# keys that moved into the codec config group (conf/codec/): a user's own config that still sets them
MOVED_TO_CODEC = {"data.target_type": "codec.target_type", "data.target_kernels": "codec.kernels",
                  "data.target_sigma": "codec.sigma", "model.test.decode": "codec.decode",
                  "model.test.blur_kernel": "codec.blur_kernel", "model.test.shift": "codec.shift"}


def _check_codec(cfg, p: _Problems) -> None:
    from rsn_lightning.codec import METHODS, TARGET_TYPES, CodecError, HeatmapCodec

    for old, new in MOVED_TO_CODEC.items():
        if OmegaConf.select(cfg, old, default=_ABSENT) is not _ABSENT:
            p.append(f"{old}: this key moved to {new} (the codec group, conf/codec/: codec=authors or codec=dark)")
    if _get(cfg, "codec") is None:
        return
    found = len(p)
    p.one_of(cfg, "codec.target_type", TARGET_TYPES, optional=False)
    p.one_of(cfg, "codec.decode", METHODS, optional=False)
    p.odd_kernels(cfg, "codec.kernels")
    if not OmegaConf.is_interpolation(cfg.codec, "input_size"):  # else data.input_size, checked there
        p.input_size(cfg, "codec.input_size")
        size, data_size = _get(cfg, "codec.input_size"), _get(cfg, "data.input_size")
        if size is not None and data_size is not None and list(size) != list(data_size):
            p.append(f"codec.input_size={list(size)}: expected data.input_size={list(data_size)}, the crops it "
                     "encodes and decodes (leave codec.input_size at ${data.input_size})")
    blur = _get(cfg, "codec.blur_kernel")
    p.check(_is_int(blur) and (blur == 0 or (blur > 0 and blur % 2 == 1)), "codec.blur_kernel", blur,
            "0 (no blur) or an odd positive integer")
    p.number_in(cfg, "codec.shift", 0.0, 1.0)
    if len(p) == found and _get(cfg, "data.input_size") is not None:
        # the pair and the sizes, as the codec itself checks them when it is built
        fields = OmegaConf.to_container(cfg.codec, resolve=True)
        try:
            HeatmapCodec(**{k: v for k, v in fields.items() if not k.startswith("_")})
        except (CodecError, TypeError, ValueError) as err:
            p.append(str(err))


def _check_model(cfg, p: _Problems, network_from_config: bool = True) -> None:
    if _get(cfg, "model") is None:
        return
    # null architecture keys take the preset's value (models/registry.py), checked there
    preset = _get(cfg, "model.net.name")
    if preset is not None:
        from rsn_lightning.models.registry import list_models, preset_config

        try:
            preset = preset_config(preset)
        except ValueError:
            p.check(False, "model.net.name", preset, f"one of {list_models()}")
            preset = None
    for key, (low, high) in ARCH_LIMITS.items():
        if key == "width_mult":
            p.number_in(cfg, f"model.net.{key}", low, high, low_open=True)
        else:
            v = _get(cfg, f"model.net.{key}")
            if v is not None:
                p.check(_is_int(v) and low <= v <= high, f"model.net.{key}", v, f"an integer in [{low}, {high}]")
    blocks = _get(cfg, "model.net.blocks")
    if blocks is not None:
        b = list(blocks)
        p.check(len(b) == 4 and all(_is_int(x) and 1 <= x <= MAX_BLOCKS for x in b), "model.net.blocks", b,
                f"4 integers in [1, {MAX_BLOCKS}] (RSBs per encoder level)")
    p.number_in(cfg, "model.optimizer.lr", 0.0, 10.0, low_open=True)
    p.number_in(cfg, "model.optimizer.weight_decay", 0.0, 1.0)
    p.one_of(cfg, "model.nonfinite_loss", ("stop", "skip"))
    # the network's keypoints against the data's (named sets only: 'auto' is read from the data later);
    # rsn-eval's network is the checkpoint's, which it checks against the data itself
    k_model, kp = _get(cfg, "model.net.num_keypoints"), _get(cfg, "data.keypoints")
    if not network_from_config:
        return
    if k_model is None and preset is not None:
        k_model = preset["num_keypoints"]
    if _is_int(k_model) and isinstance(kp, str) and kp != "auto":
        from rsn_lightning.keypoints import get_keypoint_spec

        try:
            k_data = get_keypoint_spec(kp).num_keypoints
        except (KeyError, ValueError) as err:
            p.append(f"data.keypoints={kp!r}: {err}")
        else:
            p.check(k_model == k_data, "model.net.num_keypoints", k_model,
                    f"{k_data}, the number of keypoints of data.keypoints={kp!r}")


def _check_trainer(cfg, p: _Problems) -> None:
    if _get(cfg, "trainer") is None:
        return
    v = _get(cfg, "trainer.max_epochs")
    if v is not None:
        p.check(_is_int(v) and (v >= 1 or v == -1), "trainer.max_epochs", v, "an integer >= 1 (or -1: no limit)")
    p.int_at_least(cfg, "trainer.check_val_every_n_epoch", 1, optional=True)
    p.int_at_least(cfg, "trainer.accumulate_grad_batches", 1)
    p.int_at_least(cfg, "trainer.log_every_n_steps", 1, optional=True)
    p.number_in(cfg, "trainer.gradient_clip_val", 0.0, math.inf)


def _check_checkpoint_folder(cfg, p: _Problems) -> None:
    """Every checkpoint folder must be creatable and writable: a save that fails hours in loses the run."""
    callbacks = _get(cfg, "callbacks") or {}
    for name, conf in callbacks.items():
        dirpath = conf.get("dirpath") if isinstance(conf, DictConfig) else None
        if not dirpath:
            continue
        folder = Path(str(dirpath))
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        ok = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
        p.check(ok, f"callbacks.{name}.dirpath", str(folder),
                f"a folder this user can write ({existing} is not writable)")


def _check_predict(cfg, p: _Problems) -> None:
    from rsn_lightning.codec import METHODS
    from rsn_lightning.evaluation.postprocess import NMS_MODES, RESCORE_MODES

    p.int_at_least(cfg, "batch_size", 1)
    for key in ("det_score_thr", "score_thr"):
        p.number_in(cfg, key, -math.inf, math.inf)
    # test.* and codec.*: null keeps the checkpoint's value
    p.check(isinstance(_get(cfg, "test.flip"), (bool, type(None))), "test.flip", _get(cfg, "test.flip"),
            "true, false or null")
    p.check(isinstance(_get(cfg, "test.flip_shift"), (bool, type(None))), "test.flip_shift",
            _get(cfg, "test.flip_shift"), "true, false or null")
    ext = _get(cfg, "test.box_extension")
    if ext is not None:
        values = list(ext) if OmegaConf.is_list(ext) else ext
        p.check(isinstance(values, list) and len(values) == 2 and all(_is_number(v) and 0 <= v <= 10 for v in values),
                "test.box_extension", values, "[x, y], two numbers in [0, 10] (0.25: the box enlarged by 25%)")
    p.one_of(cfg, "test.rescore", RESCORE_MODES)
    p.number_in(cfg, "test.score_threshold", -math.inf, math.inf)
    p.one_of(cfg, "test.oks_nms", ("off", *NMS_MODES))
    p.number_in(cfg, "test.nms_threshold", 0.0, 1.0)
    p.input_size(cfg, "codec.input_size")
    p.one_of(cfg, "codec.decode", METHODS)
    blur = _get(cfg, "codec.blur_kernel")
    p.check(blur is None or (_is_int(blur) and blur >= 0 and (blur <= 1 or blur % 2 == 1)), "codec.blur_kernel",
            blur, "0 (no blur), an odd kernel size, or null")
    p.number_in(cfg, "codec.shift", 0.0, 1.0)


def _check_ckpt_path(cfg, p: _Problems, allow_last: bool) -> None:
    path = _get(cfg, "ckpt_path")
    if path is None or (allow_last and path == "last"):
        return
    f = Path(str(path))
    p.check(f.is_file() and f.stat().st_size > 0, "ckpt_path", str(path),
            "an existing, non-empty checkpoint file" + (" (or 'last')" if allow_last else ""))


def validate_config(cfg: DictConfig, app: str) -> None:
    """Check the values ``app`` ('train', 'eval' or 'predict') uses; ConfigError listing every problem."""
    from omegaconf.errors import MissingMandatoryValue

    from rsn_lightning.cli.common import check_config

    try:
        check_config(cfg)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key} is required (no default): pass {err.full_key}=...") from None
    p = _Problems()
    if app == "predict":
        _check_predict(cfg, p)
    else:
        _check_data(cfg, p)
        _check_codec(cfg, p)
        _check_model(cfg, p, network_from_config=app == "train")
        _check_trainer(cfg, p)
        if app == "train" and cfg.get("train", True):
            _check_checkpoint_folder(cfg, p)
    _check_ckpt_path(cfg, p, allow_last=app == "train")
    if p:
        raise ConfigError(f"{len(p)} invalid config value(s), nothing was run:\n  " + "\n  ".join(p))


def resolve_last_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path`` with ``last`` replaced by this run folder's last checkpoint; ConfigError saying
    where it looked when there is none (Lightning would silently start from scratch)."""
    path = cfg.get("ckpt_path")
    if path != "last":
        return path
    folders = []
    for conf in (_get(cfg, "callbacks") or {}).values():
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
