"""Drawing poses: skeletons coloured by body side, joint dots sized by score, and crop grids."""

from __future__ import annotations

import cv2
import numpy as np

from rsn_lightning.keypoints import KeypointSpec

# BGR; left and right distinct from each other and from the centre line (colour-blind safe pair)
LEFT_COLOR = (0, 160, 255)  # orange
RIGHT_COLOR = (255, 140, 30)  # blue
CENTER_COLOR = (80, 220, 80)  # green


def joint_sides(spec: KeypointSpec) -> np.ndarray:
    """-1 left, +1 right, 0 centre for each joint, from the names (left_/l_ and right_/r_ prefixes)."""
    sides = np.zeros(spec.num_keypoints, dtype=np.int64)
    for i, name in enumerate(spec.names):
        n = name.lower()
        if n.startswith(("left", "l_")):
            sides[i] = -1
        elif n.startswith(("right", "r_")):
            sides[i] = 1
    return sides


def _side_color(side: int) -> tuple[int, int, int]:
    return LEFT_COLOR if side < 0 else RIGHT_COLOR if side > 0 else CENTER_COLOR


def limb_color(spec: KeypointSpec, a: int, b: int) -> tuple[int, int, int]:
    """A limb between two joints of one side takes that side's colour; anything else is centre."""
    sides = joint_sides(spec)
    return _side_color(int(sides[a])) if sides[a] == sides[b] else CENTER_COLOR


def draw_pose(image_bgr: np.ndarray, keypoints, scores, spec: KeypointSpec, score_thr: float = 0.3,
              radius: int | None = None, thickness: int | None = None,
              show_scores: bool = False) -> np.ndarray:
    """Draw P people's skeletons on a copy of ``image_bgr`` (uint8 HxWx3) and return it.

    ``keypoints`` [P, K, 2] image pixels, ``scores`` [P, K]. Joints scoring at or below ``score_thr``
    and limbs touching them are skipped. A joint's dot grows with its score (the authors' scores run
    0.5..1.5 for a trained net, mmpose-style ones 0..1: the radius is clipped to 0.5..1.5 x base);
    ``show_scores`` also writes the score beside each dot.
    """
    img = np.ascontiguousarray(image_bgr).copy()
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    kpts = np.asarray(keypoints, np.float64).reshape(-1, spec.num_keypoints, 2)
    sc = np.asarray(scores, np.float64).reshape(kpts.shape[0], spec.num_keypoints)
    h, w = img.shape[:2]
    base = max(1, round(min(h, w) / 160)) if radius is None else int(radius)
    line = max(1, round(min(h, w) / 240)) if thickness is None else int(thickness)
    sides = joint_sides(spec)
    finite = np.isfinite(kpts).all(-1)
    for p in range(kpts.shape[0]):
        ok = (sc[p] > score_thr) & finite[p]
        pts = np.round(kpts[p]).astype(np.int64)
        for a, b in spec.skeleton:
            if ok[a] and ok[b]:
                cv2.line(img, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])),
                         limb_color(spec, a, b), line, cv2.LINE_AA)
        # dots after all limbs so that no line covers a joint
        for j in np.flatnonzero(ok):
            r = max(1, round(base * float(np.clip(sc[p, j], 0.5, 1.5))))
            centre = (int(pts[j, 0]), int(pts[j, 1]))
            cv2.circle(img, centre, r + 1, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, centre, r, _side_color(int(sides[j])), -1, cv2.LINE_AA)
            if show_scores:
                cv2.putText(img, f"{sc[p, j]:.2f}", (centre[0] + r + 2, centre[1] - r - 2),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3 * max(1, base / 2), (255, 255, 255), 1, cv2.LINE_AA)
    return img


def make_grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile same-size uint8 HxWx3 images into one picture (``ncols`` default: about square)."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("make_grid needs at least one image")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ValueError("make_grid needs images of one size")
    n = len(images)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    grid = np.full((nrows * h + (nrows + 1) * pad, ncols * w + (ncols + 1) * pad, 3), pad_value, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = im if im.ndim == 3 else im[..., None]
    return grid


def draw_crops_grid(crops, keypoints, scores, spec: KeypointSpec, score_thr: float = 0.3,
                    ncols: int | None = None) -> np.ndarray:
    """A grid of a few crops (uint8 BGR), each with its one person's pose (``keypoints`` [N, K, 2] in
    crop pixels, ``scores`` [N, K]), e.g. for logging validation samples to wandb/TensorBoard."""
    tiles = [draw_pose(c, k[None], s[None], spec, score_thr) for c, k, s in zip(crops, keypoints, scores)]
    return make_grid(tiles, ncols=ncols)
