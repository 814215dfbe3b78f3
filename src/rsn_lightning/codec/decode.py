"""Decoding: heatmaps -> keypoints in image pixels and joint scores.

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

import cv2
import numpy as np

from rsn_lightning.geometry import heatmap_to_input, input_to_image

METHODS = ("authors", "sign", "dark")


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
