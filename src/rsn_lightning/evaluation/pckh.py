"""MPII PCKh, as the official evaluation and HRNet's ``evaluate`` compute and report it.

A joint is correct when its error is at most ``thr`` x the head size, the head size being
``SC_BIAS (0.6) x the diagonal of the annotated head box``; only joints marked visible in the
ground truth count. The table reports Head (head top), Shoulder, Elbow, Wrist, Hip, Knee, Ankle (each
the plain mean of left and right) and Mean: the visible-count weighted mean over all joints except
pelvis and thorax. ``Mean@0.1`` is evaluated at exactly 0.1 (HRNet's code reads its 0.01-step table at
index 11, i.e. 0.11; we do not reproduce that slip).
"""

from __future__ import annotations

import numpy as np

from rsn_lightning.evaluation.analysis import pck
from rsn_lightning.keypoints import MPII_KEYPOINTS

SC_BIAS = 0.6
# MPII joint order: 0 r_ankle 1 r_knee 2 r_hip 3 l_hip 4 l_knee 5 l_ankle 6 pelvis 7 thorax
# 8 upper_neck 9 head_top 10 r_wrist 11 r_elbow 12 r_shoulder 13 l_shoulder 14 l_elbow 15 l_wrist
MPII_GROUPS = {
    "Head": (9,),
    "Shoulder": (13, 12),
    "Elbow": (14, 11),
    "Wrist": (15, 10),
    "Hip": (3, 2),
    "Knee": (4, 1),
    "Ankle": (5, 0),
}
EXCLUDED_FROM_MEAN = (6, 7)  # pelvis and thorax, as the official table


def head_size_from_box(head_boxes) -> np.ndarray:
    """[N, 2, 2] ((x1, y1), (x2, y2)) or [N, 4] (x1, y1, x2, y2) head boxes -> head sizes [N]."""
    b = np.asarray(head_boxes, np.float64).reshape(-1, 4)
    return SC_BIAS * np.linalg.norm(b[:, 2:4] - b[:, 0:2], axis=1)


def pckh(pred, gt, visible, head_size, thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh in [0, 1]: (pckh [K] (NaN where no joint is visible), visible counts [K]).

    ``pred``/``gt`` [N, K, 2] in the same pixel frame, ``visible`` [N, K], ``head_size`` [N] (already
    ``SC_BIAS x diagonal``, see ``head_size_from_box``)."""
    pred = np.asarray(pred, np.float64)[..., :2]
    gt = np.asarray(gt, np.float64)[..., :2]
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape")
    vis = np.asarray(visible).reshape(pred.shape[:2]) > 0
    hs = np.asarray(head_size, np.float64).reshape(-1)
    if hs.shape[0] != pred.shape[0]:
        raise ValueError(f"{hs.shape[0]} head sizes for {pred.shape[0]} instances")
    if np.any(hs[vis.any(axis=1)] <= 0):
        raise ValueError("head sizes must be positive for instances with visible joints")
    # PCKh is PCK normalised by the head size (instances without visible joints may have none)
    return pck(pred, gt, vis, np.where(hs > 0, hs, 1.0), thr)


def _table_at(per_joint: np.ndarray, count: np.ndarray) -> dict[str, float]:
    out = {}
    for name, joints in MPII_GROUPS.items():
        vals = per_joint[list(joints)]
        out[name] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else float("nan")
    mask = np.ones(len(per_joint), bool)
    mask[list(EXCLUDED_FROM_MEAN)] = False
    w = np.where(mask, count, 0).astype(np.float64)
    total = w.sum()
    out["Mean"] = float(np.nansum(np.nan_to_num(per_joint) * w) / total) if total > 0 else 0.0
    return out


def pckh_table(pred, gt, visible, head_size, thresholds=(0.5, 0.1), names=None,
               per_joint: bool = False) -> dict[str, float]:
    """The MPII table in percent: Head .. Ankle and Mean at ``thresholds[0]`` (PCKh@0.5) plus
    ``Mean@<t>`` for every further threshold; ``per_joint=True`` adds ``PCKh/<joint name>``."""
    names = MPII_KEYPOINTS.names if names is None else names
    first, count = pckh(pred, gt, visible, head_size, thresholds[0])
    if len(first) != len(MPII_KEYPOINTS.names):
        raise ValueError(f"pckh_table expects the 16 MPII joints, got {len(first)}")
    table = {k: 100.0 * v for k, v in _table_at(first, count).items()}
    for t in thresholds[1:]:
        pt, ct = pckh(pred, gt, visible, head_size, t)
        table[f"Mean@{t:g}"] = 100.0 * _table_at(pt, ct)["Mean"]
    if per_joint:
        table.update({f"PCKh/{n}": 100.0 * float(v) for n, v in zip(names, first)})
    return table
