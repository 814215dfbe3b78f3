"""Per-keypoint figures for error analysis: which joints does a model get wrong?

COCO's AP hides the joint: a per-joint OKS term ``exp(-d^2 / (2 s^2 k^2))`` (the quantity COCO averages
into an instance's OKS) shows it. For ground-truth/prediction pairs matched by COCOeval itself (at
OKS 0.5, area "all"), we report per joint the mean OKS term and the fraction of terms above a
threshold (an OKS-based accuracy), over the joints labelled in the ground truth.
"""

from __future__ import annotations

import numpy as np


def keypoint_oks_terms(pred, gt, areas, sigmas) -> np.ndarray:
    """Per-joint OKS terms [M, K] of M matched pairs: ``pred`` [M, K, 2], ``gt`` [M, K, 3] (x, y, v),
    ``areas`` [M] ground-truth areas. NaN where the ground truth joint is unlabelled (v == 0)."""
    pred = np.asarray(pred, np.float64).reshape(len(areas), -1, 2)
    gt = np.asarray(gt, np.float64).reshape(len(areas), -1, 3)
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    d2 = ((pred - gt[..., :2]) ** 2).sum(-1)
    # COCOeval's formula: e = d^2 / var / (area + eps) / 2
    e = d2 / var[None] / (np.asarray(areas, np.float64)[:, None] + np.spacing(1)) / 2.0
    terms = np.exp(-e)
    terms[gt[..., 2] <= 0] = np.nan
    return terms


def per_keypoint_summary(terms, names, thr: float = 0.5) -> dict:
    """{"oks": {name: mean term}, "accuracy": {name: share of terms >= thr}, "count": {name: n}}.
    A joint never labelled gets NaN figures and count 0."""
    terms = np.asarray(terms, np.float64).reshape(-1, len(names))
    valid = ~np.isnan(terms)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(terms, axis=0) / count, np.nan)
        acc = np.where(count > 0, ((terms >= thr) & valid).sum(axis=0) / count, np.nan)
    return {
        "oks": {n: float(v) for n, v in zip(names, mean)},
        "accuracy": {n: float(v) for n, v in zip(names, acc)},
        "count": {n: int(c) for n, c in zip(names, count)},
    }


def matched_pairs(coco_eval, iou_index: int = 0) -> list[tuple[dict, dict]]:
    """(detection, ground truth) annotation pairs that an evaluated ``COCOeval`` matched at its
    ``iou_index``-th OKS threshold (0 -> 0.5) over the "all" area range, ignoring crowd/ignored GT."""
    params = coco_eval.params
    all_rng = list(params.areaRng[0])
    pairs = []
    for e in coco_eval.evalImgs:
        if e is None or list(e["aRng"]) != all_rng:
            continue
        matches = np.asarray(e["dtMatches"])
        ignore = np.asarray(e["dtIgnore"])
        if matches.size == 0:
            continue
        for d, dt_id in enumerate(e["dtIds"]):
            gt_id = int(matches[iou_index, d])
            if gt_id > 0 and not ignore[iou_index, d]:
                pairs.append((coco_eval.cocoDt.anns[dt_id], coco_eval.cocoGt.anns[gt_id]))
    return pairs


def per_keypoint_from_cocoeval(coco_eval, names, sigmas, thr: float = 0.5) -> dict:
    """Per-keypoint figures of the pairs an evaluated ``COCOeval`` matched (see ``matched_pairs``)."""
    pairs = matched_pairs(coco_eval)
    k = len(names)
    if not pairs:
        return per_keypoint_summary(np.full((0, k), np.nan), names, thr)
    pred = np.array([np.asarray(d["keypoints"], np.float64).reshape(k, 3)[:, :2] for d, _ in pairs])
    gt = np.array([np.asarray(g["keypoints"], np.float64).reshape(k, 3) for _, g in pairs])
    areas = np.array([float(g["area"]) for _, g in pairs])
    return per_keypoint_summary(keypoint_oks_terms(pred, gt, areas, sigmas), names, thr)


def pck(pred, gt, visible, norm, thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Generic PCK: per joint, share of visible joints whose error is <= thr * norm (norm [N], e.g. a
    head size or a box diagonal). Returns (per-joint PCK [K] with NaN for unseen joints, counts [K])."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)[..., :2]
    vis = np.asarray(visible).astype(bool)
    norm = np.asarray(norm, np.float64).reshape(-1, 1)
    err = np.linalg.norm(pred - gt, axis=-1) / np.maximum(norm, np.finfo(np.float64).tiny)
    hit = (err <= thr) & vis
    count = vis.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, hit.sum(axis=0) / count, np.nan), count
