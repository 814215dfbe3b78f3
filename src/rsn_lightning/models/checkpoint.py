"""Saving and loading RSN checkpoints: this project's converted/exported format and Lightning .ckpt files.

A converted or exported checkpoint is ``{"format": "rsn_lightning", "version": 1, "arch": {...},
"state_dict": {...}, "normalization": {...}, "keypoints": "coco"}``; a Lightning checkpoint of this
project carries the same ``arch``/``normalization``/``keypoints`` keys beside a ``state_dict`` whose
network keys start with ``net.``. Both are read with ``torch.load(weights_only=True)``.

Both may also carry ``codec`` (``HeatmapCodec.to_dict()``) and ``test`` (the test-time settings: flip test,
box extension, rescoring, OKS-NMS); ``load_model`` rebuilds them, falling back to the authors' settings
for the keypoint set (with a warning naming what was assumed) when a file records none.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from rsn_lightning.codec import HeatmapCodec, authors_codec
from rsn_lightning.errors import BadInputError
from rsn_lightning.models.rsn import RSN
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.test_settings import authors_test_settings, recorded_test_settings, with_given

FORMAT = "rsn_lightning"
VERSION = 1
LIGHTNING_PREFIX = "net."

log = logging.getLogger(__name__)


# what a checkpoint's ``arch`` may say: the paper's largest model is 4xRSN-50 at width 1; these bounds
# leave room for wider and deeper variants while refusing sizes no GPU holds
ARCH_LIMITS = {"num_stages": (1, 16), "num_keypoints": (1, 1000), "width_mult": (0.0, 8.0),
               "stem_channels": (1, 4096), "decoder_channels": (1, 4096), "num_branches": (1, 16)}
MAX_BLOCKS = 64


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_arch(arch: dict, source: str) -> None:
    """A checkpoint's recorded architecture within ``ARCH_LIMITS`` (BadInputError naming the key)."""
    problems = []
    for key, (low, high) in ARCH_LIMITS.items():
        if key not in arch:
            continue
        v = arch[key]
        ok = _is_number(v) and (low < v <= high if key == "width_mult" else _is_int(v) and low <= v <= high)
        if not ok:
            problems.append(f"{key}={v!r} (expected {low}..{high})")
    blocks = arch.get("blocks")
    if blocks is not None and not (isinstance(blocks, (list, tuple))
                                   and all(_is_int(b) and 1 <= b <= MAX_BLOCKS for b in blocks)):
        problems.append(f"blocks={blocks!r} (expected integers 1..{MAX_BLOCKS})")
    if problems:
        raise BadInputError(f"{source}: the recorded architecture is out of range ({'; '.join(problems)}): a "
                         "damaged or tampered checkpoint; nothing was built")


def recorded_codec(d: dict, source: str = "checkpoint") -> HeatmapCodec:
    """The codec a checkpoint dict (``load_checkpoint_dict``) records; for files without one, the authors'
    codec for its keypoint set at its recorded input size, with the decoding its ``test`` entry recorded
    (this project's checkpoints before the codec was recorded)."""
    if d.get("codec"):
        return HeatmapCodec.from_dict(d["codec"], source=f"{source}: codec")
    codec = authors_codec(d.get("keypoints") or "coco", d.get("input_size"))
    test = d.get("test") or {}
    legacy = {k: test[k] for k in ("decode", "blur_kernel", "shift") if test.get(k) is not None}
    if legacy:
        codec = codec.replace(**legacy)
    log.warning("%s records no codec: decoding with %s (the authors' for its keypoint set%s)", source, codec,
                ", and the decoding it was validated with" if legacy else "")
    return codec


def state_dict_mismatch(net: nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 5) -> str | None:
    """A message naming the first missing, unexpected and wrongly shaped keys, or None when they match."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} != model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts) or None


def load_state_dict_strict(
    net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
):
    """Load all of ``state_dict`` or nothing: a partial load would silently give a broken network."""
    problem = state_dict_mismatch(net, state_dict)
    if problem:
        raise ValueError(f"{source} does not match the network ({problem})")
    net.load_state_dict(state_dict, strict=True)
    return net


def save_checkpoint(
    path: str | Path, net: RSN, normalization: InputNormalization | None = None, keypoints: str = "coco",
    codec: HeatmapCodec | None = None, test_settings: dict | None = None,
) -> Path:
    """Write this project's checkpoint format; ``codec`` and ``test_settings`` (all of ``test_settings.TEST_SETTINGS``)
    default to the authors' for ``keypoints`` (``authors_codec``, ``authors_test_settings``)."""
    normalization = normalization or InputNormalization()
    codec = codec or authors_codec(keypoints)
    test_settings = with_given(authors_test_settings(keypoints), test_settings or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "arch": net.arch_config(),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "normalization": normalization.to_dict(),
            "keypoints": keypoints,
            "codec": codec.to_dict(),
            "test": test_settings,
        },
        path,
    )
    return path


def read_checkpoint_file(path: str | Path, map_location="cpu"):
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file (missing,
    empty, cut short, not a checkpoint, or holding objects that are not plain tensors and numbers, which
    are refused: loading them would run code from the file)."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise BadInputError(f"checkpoint {path} is empty (0 bytes): an interrupted copy or save")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message suggests weights_only=False, which is exactly what must not be done here
        found = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        raise BadInputError(f"checkpoint {path} is not a torch checkpoint, or holds objects other than "
                            "tensors and plain values, which are refused: loading them could run code "
                            f"from the file{' (' + found[0][:200] + ')' if found else ''}") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError) as err:
        raise BadInputError(f"checkpoint {path} is not a readable torch checkpoint (cut short or not a "
                            f"checkpoint: {type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def load_checkpoint_dict(path: str | Path, map_location="cpu") -> dict:
    """Read either checkpoint kind as ``{"arch", "state_dict" (network keys, no prefix), "normalization",
    "keypoints"}`` without building the network."""
    ckpt = read_checkpoint_file(path, map_location)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise BadInputError(f"{path}: not an rsn_lightning or Lightning checkpoint (no 'state_dict')")
    if ckpt.get("format") == FORMAT and "pytorch-lightning_version" not in ckpt:
        if ckpt.get("version", VERSION) > VERSION:
            raise ValueError(
                f"{path}: checkpoint version {ckpt['version']} is newer than this code's {VERSION}"
            )
        state_dict = ckpt["state_dict"]
    else:
        state_dict = {
            k[len(LIGHTNING_PREFIX) :]: v
            for k, v in ckpt["state_dict"].items()
            if k.startswith(LIGHTNING_PREFIX)
        }
        if not state_dict:
            raise ValueError(
                f"{path}: no network weights (keys starting with {LIGHTNING_PREFIX!r}); "
                "for the authors' or mmpose's checkpoints run `rsn-convert` first"
            )
    arch = ckpt.get("arch")
    if not arch or not isinstance(arch, dict):
        raise BadInputError(f"{path}: no 'arch' entry; cannot tell which network the weights belong to")
    check_arch(arch, str(path))
    return {
        "arch": dict(arch),
        "state_dict": state_dict,
        "normalization": InputNormalization.from_dict(ckpt.get("normalization")),
        "keypoints": ckpt.get("keypoints", "coco"),
        "input_size": ckpt.get("input_size"),  # (W, H) it was trained/validated at, when recorded
        "test": ckpt.get("test"),  # test-time settings it was validated with, when recorded
        "codec": ckpt.get("codec"),  # HeatmapCodec.to_dict(), when recorded
    }


def load_model(path: str | Path, map_location="cpu") -> RSN:
    """An eval-mode RSN with the checkpoint's weights, and attributes ``normalization``
    (InputNormalization), ``keypoints`` (the keypoint set's name), ``codec`` (the HeatmapCodec it was trained
    and validated with: ``recorded_codec``), ``input_size`` (W, H: the codec's) and ``test_settings`` (flip
    test, box extension, rescoring, OKS-NMS: ``recorded_test_settings``)."""
    d = load_checkpoint_dict(path, map_location)
    # checkpointing is a training-time choice: a loaded network runs plainly (older arch dicts say "efficient")
    arch = {k: v for k, v in d["arch"].items() if k != "efficient"} | {"checkpoint_activations": False}
    net = RSN(**arch)
    load_state_dict_strict(net, d["state_dict"], source=str(path))
    net.normalization = d["normalization"]
    net.keypoints = d["keypoints"]
    net.codec = recorded_codec(d, str(path))
    net.input_size = net.codec.input_size
    net.test_settings = recorded_test_settings(d)
    return net.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
