"""Encoding: joints -> the multi-level heatmap targets.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

DEFAULT_KERNELS = (15, 11, 9, 7, 5)
TARGET_TYPES = ("kernel", "gaussian", "unbiased")
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
