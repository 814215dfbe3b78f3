"""Top-down crop geometry shared by the data pipeline, decoding and inference.

Conventions (fixed for the whole package):
- ``center`` is the crop's centre (x, y) in image pixels; ``scale`` is the crop's size (w, h) in
  image pixels (the authors store it in units of 200 px; we keep pixels and convert at the edges).
- The crop is mapped to the network input so that ``center`` lands on (W/2, H/2) and ``scale``
  spans the whole input; ``rotation`` (degrees) turns the content counter-clockwise, as
  ``cv2.getRotationMatrix2D`` does.
- Heatmap cell i covers input pixels [stride*i, stride*(i+1)): a target peak goes to
  ``floor(x / stride)`` and a decoded cell maps back to ``stride*i + stride/2`` (the authors'
  ``x * 4 + 2``), so a round trip is exact to half a heatmap cell.
"""

from __future__ import annotations

import numpy as np


def fit_aspect_ratio(scale, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of (w, h) so that w / h == aspect_ratio (never shrink)."""
    w, h = float(scale[0]), float(scale[1])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float32)


def box_to_center_scale(box_xywh, aspect_ratio: float, x_ext: float = 0.0, y_ext: float = 0.0):
    """COCO box (x, y, w, h) -> (center, scale) in pixels, enlarged by (1 + ext) per axis, then fit to
    the input's aspect ratio, in the authors' order (extend first, then fit)."""
    x, y, w, h = (float(v) for v in box_xywh[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    scale = np.array([w * (1.0 + x_ext), h * (1.0 + y_ext)], dtype=np.float32)
    return center, fit_aspect_ratio(scale, aspect_ratio)


def crop_affine(center, scale, rotation: float, output_size, inverse: bool = False) -> np.ndarray:
    """2x3 affine matrix from image pixels to the ``output_size`` = (W, H) crop (or back if inverse).

    A crop of zero, negative or non-finite size, or a non-finite centre, has no such matrix: ValueError
    naming the values (callers skip such boxes before they get here)."""
    out_w, out_h = float(output_size[0]), float(output_size[1])
    if not is_valid_crop(center, scale):
        raise ValueError(f"degenerate crop: center {tuple(np.asarray(center).tolist())}, "
                         f"scale {tuple(np.asarray(scale).tolist())} (needs a finite centre and a finite "
                         "size > 0)")
    sx, sy = out_w / float(scale[0]), out_h / float(scale[1])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    # image y points down, so a counter-clockwise turn on screen is this matrix
    rot = np.array([[cos, sin], [-sin, cos]])
    lin = np.diag([sx, sy]) @ rot
    cx, cy = float(center[0]), float(center[1])
    t = np.array([out_w * 0.5, out_h * 0.5]) - lin @ np.array([cx, cy])
    m = np.concatenate([lin, t[:, None]], axis=1)
    if inverse:
        m = invert_affine(m)
    return m.astype(np.float64)


def is_valid_crop(center, scale) -> bool:
    """A finite centre and a finite crop size > 0 on both axes (what ``crop_affine`` needs)."""
    c, s = np.asarray(center, np.float64).reshape(-1), np.asarray(scale, np.float64).reshape(-1)
    # 1e-3 px: a smaller crop would magnify one pixel over 10^5 input pixels, which no box means
    return bool(np.isfinite(c).all() and np.isfinite(s).all() and (s > 1e-3).all())


def invert_affine(m: np.ndarray) -> np.ndarray:
    lin_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([lin_inv, -lin_inv @ m[:, 2:3]], axis=1)


def apply_affine(points, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points of shape [..., 2]."""
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def heatmap_to_input(coords, stride: int = 4) -> np.ndarray:
    """Heatmap cell coordinates -> input pixel coordinates (cell centre, the authors' ``x*4+2``)."""
    return np.asarray(coords, dtype=np.float64) * stride + stride * 0.5


def input_to_image(coords, center, scale, input_size) -> np.ndarray:
    """Input-pixel keypoints [N, K, 2] of N unrotated crops -> image pixels."""
    coords = np.asarray(coords, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64).reshape(-1, 1, 2)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1, 1, 2)
    size = np.asarray(input_size, dtype=np.float64).reshape(1, 1, 2)
    return coords / size * scale + center - scale * 0.5
