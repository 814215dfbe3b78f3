"""The heatmap codec: what encodes the training targets also decodes the network's heatmaps.

``HeatmapCodec`` is configured once (``conf/codec/*.yaml``), handed to the DataModule (targets) and the
LightningModule (decoding), and recorded in every checkpoint, from which ``rsn-predict``, ``rsn-eval``
and ``rsn-export`` rebuild it. Pairs that do not belong together are refused when it is built
(``check_pair``). Pure numpy / OpenCV.

Encoding
--------
The authors build a target by putting 1 at the joint's heatmap cell ``floor(x * out / in)``, blurring
the map with ``cv2.GaussianBlur(map, (k, k), 0)`` and rescaling it so the peak is 255. Blurring a delta
with a separable kernel gives the outer product of two 1-D profiles; near an edge cv2's default
border (BORDER_REFLECT_101) folds the part of the kernel that falls outside back into the map, so the
profile there is the kernel plus its mirror image. We precompute, per axis, the profile for every
cell (a small [n, n] table), which makes a level of K joints a single outer product instead of K
full-map blurs, and equals the blur construction to float precision, borders included.

``target_type="gaussian"`` is the unnormalised sampled Gaussian (peak 255 at the same cell) with a
configurable sigma, for comparison with the common SimpleBaseline/HRNet target.

``target_type="unbiased"`` is DARK's unbiased encoding (Zhang et al., CVPR 2020): the Gaussian is
centred on the joint's continuous heatmap position ``x / stride - 0.5`` (the inverse of the decoder's
cell -> ``x*stride + stride/2``) instead of its cell, so the target itself carries the sub-cell
position. Paired with ``decode="dark"`` it removes the quantisation of small heatmaps (a 24x32 map
at 96x128 input loses up to half a cell, 2 input pixels, per axis with the authors' targets).

Decoding
--------
Heatmaps -> keypoints in image pixels and joint scores.

The default, ``method="authors"``, reproduces the RSN authors' test-time decoding (``get_results`` in
their ``test.py``), vectorised over all N*K maps:

1. zero-pad each heatmap by ``border`` cells and Gaussian-blur it (kernel 5 for COCO, 9 for MPII);
2. take the argmax, zero it, take the argmax again (the second maximum);
3. move the peak ``shift`` cells (0.25) along the unit vector towards the second maximum;
4. clip to the heatmap, map the cell to the input pixel ``x*stride + stride/2`` and the input pixel
   back to the image (``geometry.input_to_image``);
5. joint score = raw (un-blurred) heatmap value / 255 + 0.5 at the rounded location.

``method="sign"`` replaces step 3 by mmpose's approximation (per-axis sign of the neighbour
difference on the blurred map); ``method="dark"`` replaces it by DARK's second-order Taylor
refinement on the log of the blurred map. Neither is ever chosen implicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from rsn_lightning.errors import BadInputError
from rsn_lightning.geometry import heatmap_to_input, input_to_image

DEFAULT_KERNELS = (15, 11, 9, 7, 5)
TARGET_TYPES = ("kernel", "gaussian", "unbiased")
METHODS = ("authors", "sign", "dark")
PEAK = 255.0

def unit_target_level(stage: int, unit: int, num_stages: int, num_levels: int,
                      coarse_to_fine: bool = True) -> int:
    """Target level that trains unit ``unit`` (0 = coarsest) of stage ``stage`` (0-based).

    With the paper's 5 levels [15, 11, 9, 7, 5], non-final stages use level ``unit`` and the final
    stage level ``unit + 1`` (one step finer); with 4 levels every unit uses level ``unit``.
    """
    offset = num_levels - 4
    if offset not in (0, 1):
        raise ValueError(f"expected 4 or 5 target levels, got {num_levels}")
    if not (0 <= stage < num_stages and 0 <= unit < 4):
        raise ValueError(f"stage {stage} / unit {unit} outside a {num_stages}-stage, 4-unit model")
    if coarse_to_fine and stage == num_stages - 1:
        return unit + offset
    return unit


def kernel_sigma(ksize: int) -> float:
    """The sigma cv2 derives for ``GaussianBlur(.., (k, k), 0)`` (its documented formula)."""
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def _reflect101(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


@lru_cache(maxsize=64)
def blur_profile_table(n: int, ksize: int) -> np.ndarray:
    """[n, n] table: row p is the 1-D result of blurring a unit delta at p with cv2's k-tap Gaussian
    under BORDER_REFLECT_101, i.e. one axis of the authors' target before peak normalisation."""
    if ksize % 2 != 1 or ksize < 1:
        raise ValueError(f"kernel size must be odd and positive, got {ksize}")
    # cv2's own coefficients: for k <= 7 and sigma 0 it uses fixed tables, not the formula
    kern = cv2.getGaussianKernel(ksize, 0, ktype=cv2.CV_64F).ravel()
    r = ksize // 2
    # out[j] = sum_t kern[t + r] * in[reflect(j + t)]; with in = delta at p that is the sum of the taps
    # whose reflected source is p
    src = _reflect101(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], n)  # [j, tap]
    table = np.zeros((n, n), np.float64)  # [p, j]
    for tap in range(ksize):
        np.add.at(table, (src[:, tap], np.arange(n)), kern[tap])
    table.flags.writeable = False
    return table


def _peak_cells(joints: np.ndarray, input_size, heatmap_size) -> tuple[np.ndarray, np.ndarray]:
    in_w, in_h = input_size
    out_w, out_h = heatmap_size
    # the authors' int(): truncation, equal to floor for the in-crop (non-negative) joints we keep
    px = np.floor(joints[:, 0] * out_w / in_w).astype(np.int64)
    py = np.floor(joints[:, 1] * out_h / in_h).astype(np.int64)
    return px, py


def joint_target_weight(joints: np.ndarray, visibility: np.ndarray, input_size) -> np.ndarray:
    """1 for joints labelled (v > 0) with finite coordinates inside [0, W-1] x [0, H-1], else 0 (the
    authors' in-crop test)."""
    joints = np.asarray(joints, np.float64)
    in_w, in_h = input_size
    with np.errstate(invalid="ignore"):
        inside = ((joints[:, 0] >= 0) & (joints[:, 0] <= in_w - 1)
                  & (joints[:, 1] >= 0) & (joints[:, 1] <= in_h - 1))
    ok = (np.asarray(visibility) > 0) & np.isfinite(joints[:, :2]).all(axis=1) & inside
    return ok.astype(np.float32)


def _with_zero_row(table: np.ndarray) -> np.ndarray:
    return np.concatenate([table, np.zeros((1, table.shape[1]))]).astype(np.float32)


class HeatmapTargetGenerator:
    """Joints in input pixels -> ``[L, K, H/4, W/4]`` float32 targets (peak 255) and weights [K].

    ``kernels``: the blur kernel per level (``target_type="kernel"``, the authors'); for
    ``target_type="gaussian"`` or ``"unbiased"`` ``sigma`` is one value for all levels, a list per level, or None to use
    the sigma cv2 would derive from each level's kernel.
    """

    def __init__(self, input_size, kernels: Sequence[int] = DEFAULT_KERNELS, target_type: str = "kernel",
                 sigma: float | Sequence[float] | None = None, stride: int = 4):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if self.input_size[0] % stride or self.input_size[1] % stride:
            raise ValueError(f"input size {self.input_size} must be a multiple of the stride {stride}")
        self.heatmap_size = (self.input_size[0] // stride, self.input_size[1] // stride)
        self.kernels = tuple(int(k) for k in kernels)
        if target_type not in TARGET_TYPES:
            raise ValueError(f"target_type must be one of {TARGET_TYPES}, got {target_type!r}")
        self.target_type = target_type
        if sigma is None:
            sigmas = [kernel_sigma(k) for k in self.kernels]
        elif np.ndim(sigma) == 0:
            sigmas = [float(sigma)] * len(self.kernels)
        else:
            sigmas = [float(s) for s in sigma]
            if len(sigmas) != len(self.kernels):
                raise ValueError(f"{len(sigmas)} sigmas for {len(self.kernels)} target levels")
        self.sigmas = tuple(sigmas)
        w, h = self.heatmap_size
        if target_type == "kernel":
            # normalise each axis profile to peak 1: the 2-D peak is the product of the axis peaks
            tables = [(self._unit_peak(blur_profile_table(w, k)),
                       self._unit_peak(blur_profile_table(h, k))) for k in self.kernels]
        elif target_type == "gaussian":
            tables = [(self._gauss_table(w, s), self._gauss_table(h, s)) for s in self.sigmas]
        else:
            tables = None  # unbiased profiles depend on the continuous position: built per call
        self.stride = stride
        # the peak height folded into the x profiles: one multiply per map
        self._tables = None if tables is None else [(tx * np.float32(PEAK), ty) for tx, ty in tables]

    @staticmethod
    def _unit_peak(table: np.ndarray) -> np.ndarray:
        return _with_zero_row(table / table.max(axis=1, keepdims=True))

    @staticmethod
    def _gauss_table(n: int, sigma: float) -> np.ndarray:
        d = np.arange(n)[None, :] - np.arange(n)[:, None]
        return _with_zero_row(np.exp(-(d.astype(np.float64) ** 2) / (2.0 * sigma * sigma)))

    @property
    def num_levels(self) -> int:
        return len(self.kernels)

    def __call__(self, joints, visibility) -> tuple[np.ndarray, np.ndarray]:
        """``joints`` [K, 2+] in input pixels, ``visibility`` [K] -> (heatmaps [L, K, h, w], weight [K]).

        Joints with weight 0 (unlabelled, or outside the crop) get an all-zero map."""
        joints = np.asarray(joints, np.float64)[:, :2]
        weight = joint_target_weight(joints, visibility, self.input_size)
        k = joints.shape[0]
        w, h = self.heatmap_size
        out = np.empty((self.num_levels, k, h, w), np.float32)
        keep = weight > 0
        if self._tables is None:
            return self._unbiased(joints, keep, out), weight
        px, py = _peak_cells(np.where(keep[:, None], joints, 0.0), self.input_size, self.heatmap_size)
        # dropped joints read the tables' extra all-zero row, so every map is written exactly once
        px[~keep], py[~keep] = w, h
        for level, (tx, ty) in enumerate(self._tables):
            # [k, h, 1] * [k, 1, w]: every joint's map in one broadcast, straight into the output
            np.multiply(ty[py][:, :, None], tx[px][:, None, :], out=out[level])
        return out, weight

    def _unbiased(self, joints: np.ndarray, keep: np.ndarray, out: np.ndarray) -> np.ndarray:
        w, h = self.heatmap_size
        centre = joints / self.stride - 0.5  # continuous heatmap coordinates
        gx = np.arange(w, dtype=np.float64)[None, :] - centre[:, :1]  # [k, w]
        gy = np.arange(h, dtype=np.float64)[None, :] - centre[:, 1:2]  # [k, h]
        mask = keep.astype(np.float64)[:, None]
        for level, sigma in enumerate(self.sigmas):
            two_var = 2.0 * sigma * sigma
            tx = (np.exp(-gx * gx / two_var) * (PEAK * mask)).astype(np.float32)
            ty = np.exp(-gy * gy / two_var).astype(np.float32)
            np.multiply(ty[:, :, None], tx[:, None, :], out=out[level])
        return out


# ---------------------------------------------------------------------------------------------- decoding
def _blur_padded(heatmaps: np.ndarray, kernel: int, border: int) -> np.ndarray:
    """[M, h, w] -> zero-padded [M, h+2b, w+2b] float64 maps, each blurred on its own.

    One cv2 call per map rather than a multi-channel call: OpenCV's multi-channel path rounds
    differently in the last bit, which can flip the argmax on ties against the authors' result.
    """
    m, h, w = heatmaps.shape
    padded = np.zeros((m, h + 2 * border, w + 2 * border), dtype=np.float64)
    padded[:, border:border + h, border:border + w] = heatmaps
    if kernel and kernel > 1:
        for i in range(m):
            padded[i] = cv2.GaussianBlur(padded[i], (kernel, kernel), 0)
    return padded


def decode_quantisation(input_size, heatmap_size, shift: float = 0.25) -> np.ndarray:
    """Worst-case per-axis decoding error in input pixels of an exact peak at cell ``floor(x/stride)``:
    half a cell (the cell centre) plus the ``shift`` step, both in input pixels.

    It holds for peaks at least ``blur_kernel // 2`` cells inside the heatmap: nearer the border the
    zero padding pulls the blurred maximum of an edge-truncated map inwards (so does the authors' code).
    """
    stride = np.asarray(input_size, np.float64) / np.asarray(heatmap_size, np.float64)
    return stride * 0.5 + stride * abs(shift)


def _refine_authors(blurred, flat_idx, y, x, shift):
    # second maximum of the same blurred map, the first one zeroed (as the authors do)
    m = blurred.shape[0]
    flat = blurred.reshape(m, -1).copy()
    flat[np.arange(m), flat_idx] = 0.0
    second = np.argmax(flat, axis=1)
    py, px = np.unravel_index(second, blurred.shape[1:])
    dx, dy = (px - x).astype(np.float64), (py - y).astype(np.float64)
    ln = np.sqrt(dx * dx + dy * dy)
    ok = ln > 1e-3
    step = np.where(ok, shift / np.where(ok, ln, 1.0), 0.0)
    return x + dx * step, y + dy * step


def _refine_sign(blurred, y, x, shift):
    # mmpose's shortcut: per axis, step towards the larger neighbour (padding keeps neighbours in range)
    idx = np.arange(blurred.shape[0])
    hp, wp = blurred.shape[1:]
    xl, xr = np.clip(x - 1, 0, wp - 1), np.clip(x + 1, 0, wp - 1)
    yu, yd = np.clip(y - 1, 0, hp - 1), np.clip(y + 1, 0, hp - 1)
    sx = np.sign(blurred[idx, y, xr] - blurred[idx, y, xl])
    sy = np.sign(blurred[idx, yd, x] - blurred[idx, yu, x])
    return x + shift * sx, y + shift * sy


def _refine_dark(blurred, y, x):
    """DARK (Zhang et al., CVPR 2020): Newton step on the log-heatmap around the integer peak."""
    idx = np.arange(blurred.shape[0])
    hp, wp = blurred.shape[1:]
    logm = np.log(np.maximum(blurred, 1e-10))

    def at(dy, dx):
        return logm[idx, np.clip(y + dy, 0, hp - 1), np.clip(x + dx, 0, wp - 1)]

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    ok = np.abs(det) > 1e-12
    safe = np.where(ok, det, 1.0)
    ox = np.where(ok, -(hyy * gx - hxy * gy) / safe, 0.0)
    oy = np.where(ok, -(-hxy * gx + hxx * gy) / safe, 0.0)
    # a flat or saddle-shaped neighbourhood gives a meaningless Newton step: stay within one cell
    return x + np.clip(ox, -1.0, 1.0), y + np.clip(oy, -1.0, 1.0)


def decode_heatmaps_to_input(heatmaps, input_size, method: str = "authors", blur_kernel: int = 5,
                             shift: float = 0.25, border: int = 10):
    """[N, K, h, w] heatmaps -> (coords [N, K, 2] in input pixels, scores [N, K])."""
    if method not in METHODS:
        raise ValueError(f"unknown decoding method {method!r}; expected one of {METHODS}")
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [N, K, h, w], got shape {hm.shape}")
    n, k, h, w = hm.shape
    if n * k == 0:
        return np.zeros((n, k, 2)), np.zeros((n, k))
    maps = hm.reshape(n * k, h, w)
    blurred = _blur_padded(maps, int(blur_kernel), border)
    flat_idx = np.argmax(blurred.reshape(n * k, -1), axis=1)
    y, x = np.unravel_index(flat_idx, blurred.shape[1:])
    if method == "authors":
        fx, fy = _refine_authors(blurred, flat_idx, y, x, shift)
    elif method == "sign":
        fx, fy = _refine_sign(blurred, y, x, shift)
    else:
        fx, fy = _refine_dark(blurred, y, x)
    fx = np.clip(fx - border, 0, w - 1)
    fy = np.clip(fy - border, 0, h - 1)
    # score from the raw map at the rounded peak (np.round rounds half to even, as Python's round)
    ry = np.round(fy).astype(np.int64)
    rx = np.round(fx).astype(np.int64)
    scores = maps[np.arange(n * k), ry, rx] / 255.0 + 0.5
    stride = np.asarray(input_size, np.float64) / np.array([w, h], np.float64)
    if not np.allclose(stride, stride[0]):
        raise ValueError(f"input size {tuple(input_size)} is not a uniform multiple of heatmap size {(w, h)}")
    cells = np.stack([fx, fy], axis=-1).reshape(n, k, 2)
    coords = heatmap_to_input(cells, stride=float(stride[0]))
    return coords, scores.reshape(n, k)


def decode_heatmaps(heatmaps, center, scale, input_size, method: str = "authors", blur_kernel: int = 5,
                    shift: float = 0.25, border: int = 10):
    """[N, K, h, w] heatmaps of N unrotated crops -> (coords [N, K, 2] image pixels, scores [N, K]).

    ``center``/``scale`` are [N, 2] in image pixels (``geometry`` conventions); ``input_size`` is the
    network input (W, H). Scores are ``value/255 + 0.5`` (the authors' scale, 1.5 at a perfect peak).
    """
    coords, scores = decode_heatmaps_to_input(heatmaps, input_size, method, blur_kernel, shift, border)
    if coords.shape[0] == 0:
        return coords, scores
    return input_to_image(coords, center, scale, input_size), scores


# ---------------------------------------------------------------------------------------------- the codec
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
