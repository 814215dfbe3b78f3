"""The heatmap codec: what encodes the training targets also decodes the network's heatmaps.

``HeatmapCodec`` is configured once (``conf/codec/*.yaml``), handed to the DataModule (targets) and the
LightningModule (decoding), and recorded in every checkpoint, from which ``rsn-predict``, ``rsn-eval``
and ``rsn-export`` rebuild it. Pairs that do not belong together are refused when it is built
(``check_pair``). Pure numpy / OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsn_lightning.codec.decode import METHODS, decode_heatmaps, decode_heatmaps_to_input
from rsn_lightning.codec.targets import DEFAULT_KERNELS, TARGET_TYPES, HeatmapTargetGenerator
from rsn_lightning.errors import BadInputError

# encode/decode pairs that are refused, and why: the decoder would throw away what the targets encode
INCOMPATIBLE = {
    ("unbiased", "authors"): "the unbiased targets put the peak at the joint's sub-cell position; the authors' "
                             "decoding reads the peak cell and then moves it a quarter cell towards the second "
                             "maximum, a shift made for the cell-quantised kernel targets",
    ("unbiased", "sign"): "the unbiased targets put the peak at the joint's sub-cell position; the sign decoding "
                          "moves every peak a quarter cell, a shift made for cell-quantised targets",
}


class CodecError(BadInputError):
    """A codec that cannot work: an unknown method, a bad size, or an encode/decode pair that is refused."""


class HeatmapCodec:
    """Joints -> multi-level heatmap targets, and heatmaps -> joints, configured once.

    ``input_size`` (W, H) and ``stride`` fix the heatmap size; ``target_type``, ``kernels`` and ``sigma``
    the targets (``HeatmapTargetGenerator``); ``decode``, ``blur_kernel`` and ``shift`` the decoding
    (``decode_heatmaps``). ``to_dict()`` is what checkpoints record and ``from_dict`` rebuilds it.
    """

    FIELDS = ("input_size", "target_type", "kernels", "sigma", "decode", "blur_kernel", "shift", "stride")

    def __init__(self, input_size=(192, 256), target_type: str = "kernel", kernels: Sequence[int] = DEFAULT_KERNELS,
                 sigma: float | Sequence[float] | None = None, decode: str = "authors", blur_kernel: int = 5,
                 shift: float = 0.25, stride: int = 4):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.target_type = str(target_type)
        self.kernels = tuple(int(k) for k in kernels)
        if sigma is not None:
            sigma = float(sigma) if np.ndim(sigma) == 0 else tuple(float(v) for v in sigma)
        self.sigma = sigma
        self.decode_method = str(decode)
        self.blur_kernel = int(blur_kernel)
        self.shift = float(shift)
        self.stride = int(stride)
        self._check()
        self._targets: HeatmapTargetGenerator | None = None

    def _check(self) -> None:
        if self.target_type not in TARGET_TYPES:
            raise CodecError(f"codec.target_type={self.target_type!r}: expected one of {TARGET_TYPES}")
        if self.decode_method not in METHODS:
            raise CodecError(f"codec.decode={self.decode_method!r}: expected one of {METHODS}")
        reason = INCOMPATIBLE.get((self.target_type, self.decode_method))
        if reason:
            raise CodecError(f"codec.target_type={self.target_type!r} cannot be decoded with "
                             f"codec.decode={self.decode_method!r}: {reason}. Use codec=dark (unbiased targets, DARK "
                             "decoding) or codec=authors (kernel targets, the authors' decoding)")
        w, h = self.input_size
        if self.stride < 1 or w < self.stride or h < self.stride or w % self.stride or h % self.stride:
            raise CodecError(f"codec.input_size={[w, h]}: expected positive multiples of the stride {self.stride}")
        if self.blur_kernel < 0 or (self.blur_kernel > 1 and self.blur_kernel % 2 == 0):
            raise CodecError(f"codec.blur_kernel={self.blur_kernel}: expected 0 (no blur) or an odd kernel size")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise CodecError(f"codec.kernels={list(self.kernels)}: expected odd positive kernel sizes")

    # ------------------------------------------------------------------ encode
    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    @property
    def num_levels(self) -> int:
        return len(self.kernels)

    @property
    def targets(self) -> HeatmapTargetGenerator:
        if self._targets is None:  # built on first use: decoding alone never needs the tables
            self._targets = HeatmapTargetGenerator(self.input_size, self.kernels, self.target_type, self.sigma,
                                                   self.stride)
        return self._targets

    def encode(self, joints, visibility) -> tuple[np.ndarray, np.ndarray]:
        """Joints [K, 2+] in input pixels, visibility [K] -> (targets [L, K, h, w], weights [K])."""
        return self.targets(joints, visibility)

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps, center=None, scale=None) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps [N, K, h, w] -> (coords [N, K, 2], joint scores [N, K]): in image pixels when the crops'
        ``center``/``scale`` [N, 2] are given, else in input pixels."""
        heatmaps = np.asarray(heatmaps)
        if heatmaps.ndim == 4 and heatmaps.shape[0] and tuple(heatmaps.shape[-2:][::-1]) != self.heatmap_size:
            raise CodecError(f"heatmaps of size {tuple(heatmaps.shape[-2:][::-1])} (W, H) for a codec of input "
                             f"{self.input_size}, heatmaps {self.heatmap_size}")
        if center is None:
            return decode_heatmaps_to_input(heatmaps, self.input_size, self.decode_method, self.blur_kernel,
                                            self.shift)
        return decode_heatmaps(heatmaps, center, scale, self.input_size, self.decode_method, self.blur_kernel,
                               self.shift)

    # ------------------------------------------------------------------ record
    def to_dict(self) -> dict:
        """Plain values (lists, numbers, strings): what checkpoints and ONNX metadata record."""
        sigma = list(self.sigma) if isinstance(self.sigma, tuple) else self.sigma
        return {"input_size": list(self.input_size), "target_type": self.target_type, "kernels": list(self.kernels),
                "sigma": sigma, "decode": self.decode_method, "blur_kernel": self.blur_kernel, "shift": self.shift,
                "stride": self.stride}

    @classmethod
    def from_dict(cls, d: dict, source: str = "codec") -> HeatmapCodec:
        unknown = set(d) - set(cls.FIELDS)
        if unknown:
            raise CodecError(f"{source}: unknown codec keys {sorted(unknown)}; expected some of {list(cls.FIELDS)}")
        return cls(**dict(d))

    def replace(self, **changes) -> HeatmapCodec:
        return self.from_dict({**self.to_dict(), **changes})

    def __eq__(self, other) -> bool:
        return isinstance(other, HeatmapCodec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return "HeatmapCodec(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


# The authors' test-time codec per keypoint set, for checkpoints that record none (the authors' and mmpose's
# weights through rsn-convert, and this project's checkpoints written before the codec was recorded):
# input 192x256 (COCO) / 256x256 (MPII), blur kernel 5 (COCO) / 9 (MPII), quarter shift
# (caiyuanhao1998/RSN dataset/attribute.py: TEST.GAUSSIAN_KERNEL 5 for COCO, 9 for MPII; TEST.SHIFT_RATIOS 0.25).
AUTHORS_INPUT_SIZE = {"coco": (192, 256), "mpii": (256, 256)}
AUTHORS_BLUR_KERNEL = {"coco": 5, "mpii": 9}


def authors_codec(keypoints: str = "coco", input_size=None) -> HeatmapCodec:
    """The authors' codec (kernel targets, their decoding) at their input size and blur for ``keypoints``."""
    size = input_size or AUTHORS_INPUT_SIZE.get(str(keypoints), AUTHORS_INPUT_SIZE["coco"])
    return HeatmapCodec(size, blur_kernel=AUTHORS_BLUR_KERNEL.get(str(keypoints), 5))
