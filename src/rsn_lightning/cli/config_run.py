"""Config checks of the data, the trainer, checkpoints and prediction (``data.*``, ``trainer.*``,
``callbacks.*``, ``ckpt_path``, ``predict.*``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsn_lightning.cli.config_values import Problems, get_value, is_int, is_number


def check_data(cfg, p: Problems) -> None:
    if get_value(cfg, "data") is None:
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


def check_trainer(cfg, p: Problems) -> None:
    if get_value(cfg, "trainer") is None:
        return
    v = get_value(cfg, "trainer.max_epochs")
    if v is not None:
        p.check(is_int(v) and (v >= 1 or v == -1), "trainer.max_epochs", v, "an integer >= 1 (or -1: no limit)")
    p.int_at_least(cfg, "trainer.check_val_every_n_epoch", 1, optional=True)
    p.int_at_least(cfg, "trainer.accumulate_grad_batches", 1)
    p.int_at_least(cfg, "trainer.log_every_n_steps", 1, optional=True)
    p.number_in(cfg, "trainer.gradient_clip_val", 0.0, math.inf)


def check_checkpoint_folder(cfg, p: Problems) -> None:
    """Every checkpoint folder must be creatable and writable: a save that fails hours in loses the run."""
    callbacks = get_value(cfg, "callbacks") or {}
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


def check_predict(cfg, p: Problems) -> None:
    from rsn_lightning.codec import METHODS
    from rsn_lightning.evaluation.postprocess import NMS_MODES, RESCORE_MODES

    p.int_at_least(cfg, "batch_size", 1)
    for key in ("det_score_thr", "score_thr"):
        p.number_in(cfg, key, -math.inf, math.inf)
    # test.* and codec.*: null keeps the checkpoint's value
    p.check(isinstance(get_value(cfg, "test.flip"), (bool, type(None))), "test.flip", get_value(cfg, "test.flip"),
            "true, false or null")
    p.check(isinstance(get_value(cfg, "test.flip_shift"), (bool, type(None))), "test.flip_shift",
            get_value(cfg, "test.flip_shift"), "true, false or null")
    ext = get_value(cfg, "test.box_extension")
    if ext is not None:
        values = list(ext) if OmegaConf.is_list(ext) else ext
        p.check(isinstance(values, list) and len(values) == 2 and all(is_number(v) and 0 <= v <= 10 for v in values),
                "test.box_extension", values, "[x, y], two numbers in [0, 10] (0.25: the box enlarged by 25%)")
    p.one_of(cfg, "test.rescore", RESCORE_MODES)
    p.number_in(cfg, "test.score_threshold", -math.inf, math.inf)
    p.one_of(cfg, "test.oks_nms", ("off", *NMS_MODES))
    p.number_in(cfg, "test.nms_threshold", 0.0, 1.0)
    p.input_size(cfg, "codec.input_size")
    p.one_of(cfg, "codec.decode", METHODS)
    blur = get_value(cfg, "codec.blur_kernel")
    p.check(blur is None or (is_int(blur) and blur >= 0 and (blur <= 1 or blur % 2 == 1)), "codec.blur_kernel",
            blur, "0 (no blur), an odd kernel size, or null")
    p.number_in(cfg, "codec.shift", 0.0, 1.0)


def check_ckpt_path(cfg, p: Problems, allow_last: bool) -> None:
    path = get_value(cfg, "ckpt_path")
    if path is None or (allow_last and path == "last"):
        return
    f = Path(str(path))
    p.check(f.is_file() and f.stat().st_size > 0, "ckpt_path", str(path),
            "an existing, non-empty checkpoint file" + (" (or 'last')" if allow_last else ""))
