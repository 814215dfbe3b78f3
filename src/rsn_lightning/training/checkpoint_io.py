"""What a training checkpoint carries besides Lightning's own entries (``checkpoint_metadata``, the
global RNG states), and checkpoint writes that are atomic on the target filesystem, whose failures are
errors.

Lightning's own save (``lightning_fabric.utilities.cloud_io._atomic_save``) writes through an fsspec
transaction whose temp file lives in ``TMPDIR``; when ``TMPDIR`` is on another filesystem the final
move is a copy, so a job killed during it leaves a torn (even 0-byte) ``last.ckpt``. It also ignores a
``PermissionError`` that is not a cross-device one, so an unwritable folder silently drops every save.
Here the temp file is created in the checkpoint's own folder, written, fsynced, renamed over the target
with ``os.replace`` (atomic within one filesystem) and the folder is fsynced, so a reader sees the old
complete file or the new complete file; any error propagates. Remote paths (``s3://`` ...) keep
Lightning's writer.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO


def _is_local(path) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


def atomic_torch_save(obj: Any, path) -> Path:
    """``torch.save`` to ``path`` through a temp file in the same folder, fsync and rename."""
    path = Path(str(path).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return path
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO with ``atomic_torch_save`` for local paths."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)


def checkpoint_metadata(net, normalization, keypoints: str, codec, test: dict) -> dict:
    """The entries that let ``models.checkpoint.load_model`` rebuild the bare network without Lightning or
    Hydra, and rsn-predict / rsn-eval / rsn-export run it as it was validated: ``arch``, ``normalization``,
    ``keypoints``, ``codec`` (``HeatmapCodec.to_dict()``, the input size included) and ``test`` (the
    test-time settings, ``test_settings.TEST_SETTINGS``)."""
    return {"arch": net.arch_config() if hasattr(net, "arch_config") else None,
            "normalization": normalization.to_dict(), "keypoints": keypoints, "codec": codec.to_dict(), "test": test}


def add_resume_state(checkpoint: dict) -> None:
    """The global RNG states, and the weights in the default memory layout (a channels-last network's
    4-D tensors would otherwise be saved channels-last)."""
    checkpoint["rng_states"] = rng_states()
    state = checkpoint.get("state_dict")
    if state is not None:
        checkpoint["state_dict"] = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def rng_states() -> dict:
    """The global RNG states (torch, NumPy's legacy global, Python's) as plain values (weights_only loads)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the legacy global state
    return {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
