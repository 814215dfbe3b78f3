"""OKS-based non-maximum suppression over the pose instances of one image.

The authors do not suppress duplicates; HRNet and mmpose do (hard OKS-NMS at 0.9, or soft-OKS-NMS
with a Gaussian decay). Both are here as opt-in switches; the evaluator keeps everything by default.
"""

from __future__ import annotations

import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS


def oks_overlap(ref, others, ref_area, other_areas, sigmas=None, ref_vis=None, other_vis=None,
                vis_thr: float | None = None) -> np.ndarray:
    """OKS of one instance ``ref`` [K, 2] against ``others`` [M, K, 2] (COCO's formula with the mean
    area of the pair as the object scale). With ``vis_thr`` only joints whose scores in both
    instances exceed it are counted (an instance pair with none gets 0)."""
    sig = np.asarray(COCO_KEYPOINTS.sigmas if sigmas is None else sigmas, dtype=np.float64)
    ref = np.asarray(ref, np.float64)
    others = np.asarray(others, np.float64).reshape(-1, *ref.shape)
    if others.shape[0] == 0:
        return np.zeros(0)
    var = (2.0 * sig) ** 2
    d2 = ((others - ref[None]) ** 2).sum(-1)
    scale = (float(ref_area) + np.asarray(other_areas, np.float64).reshape(-1)) / 2.0 + np.spacing(1)
    e = np.exp(-d2 / var[None] / scale[:, None] / 2.0)
    if vis_thr is None or ref_vis is None or other_vis is None:
        return e.mean(axis=1)
    mask = (np.asarray(ref_vis)[None] > vis_thr) & (np.asarray(other_vis).reshape(e.shape) > vis_thr)
    count = mask.sum(axis=1)
    return np.where(count > 0, (e * mask).sum(axis=1) / np.maximum(count, 1), 0.0)


def oks_nms(keypoints, scores, areas, thr: float = 0.9, sigmas=None, joint_scores=None,
            vis_thr: float | None = None) -> np.ndarray:
    """Greedy OKS-NMS: indices kept, best score first. An instance is dropped when its OKS with a kept
    higher-scoring one exceeds ``thr``."""
    kpts = np.asarray(keypoints, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    areas = np.asarray(areas, np.float64)
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        vis = (joint_scores[i], joint_scores[rest]) if joint_scores is not None else (None, None)
        ovr = oks_overlap(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, *vis, vis_thr=vis_thr)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(keypoints, scores, areas, thr: float = 0.3, sigmas=None, max_dets: int = 20,
                 joint_scores=None, vis_thr: float | None = None, decay: str = "gaussian"):
    """Soft-OKS-NMS: rather than dropping overlaps, decay their scores (``exp(-oks^2 / thr)``, or
    linearly above ``thr``), re-sort, repeat. Returns (kept indices, their decayed scores)."""
    if decay not in ("gaussian", "linear"):
        raise ValueError(f"decay must be 'gaussian' or 'linear', got {decay!r}")
    kpts = np.asarray(keypoints, np.float64)
    areas = np.asarray(areas, np.float64)
    cur = np.asarray(scores, np.float64).copy()
    order = np.argsort(-cur, kind="stable")
    cur = cur[order]
    keep, kept_scores = [], []
    while order.size and len(keep) < max_dets:
        i = order[0]
        keep.append(int(i))
        kept_scores.append(float(cur[0]))
        rest, rest_scores = order[1:], cur[1:].copy()
        vis = (joint_scores[i], joint_scores[rest]) if joint_scores is not None else (None, None)
        ovr = oks_overlap(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, *vis, vis_thr=vis_thr)
        if decay == "gaussian":
            rest_scores = rest_scores * np.exp(-(ovr ** 2) / thr)
        else:
            hit = ovr >= thr
            rest_scores[hit] *= 1.0 - ovr[hit]
        resort = np.argsort(-rest_scores, kind="stable")
        order, cur = rest[resort], rest_scores[resort]
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores)
