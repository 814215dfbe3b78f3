"""Test-time post-processing shared by rsn-eval (``CocoKeypointEvaluator``) and rsn-predict (``Predictor``):
instance rescoring, per-image OKS-NMS and the COCO results format. Pure numpy."""

from __future__ import annotations

import numpy as np

from rsn_lightning.evaluation.oks_nms import oks_nms, soft_oks_nms

RESCORE_MODES = ("authors", "mmpose", "none")
NMS_MODES = ("oks", "soft")
# HRNet's and mmpose's thresholds: hard OKS-NMS drops an instance above OKS 0.9 with a better one,
# soft-OKS-NMS decays by exp(-oks^2 / 0.3)
DEFAULT_NMS_THRESHOLD = {"oks": 0.9, "soft": 0.3}


def instance_scores(joint_scores, box_scores, mode: str = "authors", threshold: float = 0.2) -> np.ndarray:
    """Per-instance score = box score x mean joint score.

    ``"authors"``: mean of all joints (their test.py). ``"mmpose"``: mean of the joints scoring above
    ``threshold`` (0 when none does), mmpose's COCO rescoring. ``"none"``: the box scores unchanged.
    """
    js = np.asarray(joint_scores, dtype=np.float64)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if mode not in RESCORE_MODES:
        raise ValueError(f"unknown rescoring {mode!r}; expected one of {RESCORE_MODES}")
    if js.shape[0] == 0:
        return np.zeros(0)
    if mode == "none":
        return bs.copy()
    if mode == "authors":
        mean = js.mean(axis=1)
    else:
        mask = js > threshold
        count = mask.sum(axis=1)
        mean = np.where(count > 0, (js * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    return bs * mean


def nms_mode(option) -> str | None:
    """``oks_nms`` as configs and callers give it -> None (off), ``"oks"`` (hard) or ``"soft"``."""
    if option in (None, False, "none", "off", ""):
        return None
    if option is True or option in ("oks", "oks_nms", "hard"):
        return "oks"
    if option in ("soft", "soft_oks", "soft_oks_nms"):
        return "soft"
    raise ValueError(f"oks_nms must be None/False, True/'oks' or 'soft', got {option!r}")


def keypoint_box_area(coords) -> np.ndarray:
    """Area of each instance's keypoint bounding box (as pycocotools' loadRes computes it)."""
    coords = np.asarray(coords, np.float64)
    if coords.shape[0] == 0:
        return np.zeros(0)
    span = coords.max(axis=1) - coords.min(axis=1)
    return span[:, 0] * span[:, 1]


def oks_nms_per_image(coords, scores, areas, image_ids, mode, threshold: float | None = None,
                      sigmas=None) -> tuple[np.ndarray, np.ndarray]:
    """OKS-NMS within each image: (indices kept, in input order; scores, with soft-NMS's decay applied).

    ``areas`` [N] are the instances' object scales (0 or less: their keypoint box area is used);
    ``mode`` anything ``nms_mode`` accepts (off keeps everything); ``threshold`` None: the mode's default.
    """
    coords = np.asarray(coords, np.float64)
    scores = np.asarray(scores, np.float64).reshape(-1)
    mode = nms_mode(mode)
    if mode is None or coords.shape[0] == 0:
        return np.arange(coords.shape[0]), scores.copy()
    thr = DEFAULT_NMS_THRESHOLD[mode] if threshold is None else float(threshold)
    areas = np.asarray(areas, np.float64).reshape(-1)
    areas = np.where(areas > 0, areas, keypoint_box_area(coords))
    image_ids = np.asarray(image_ids).reshape(-1)
    new_scores = scores.copy()
    keep_all = []
    for img in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == img)
        if mode == "oks":
            kept = oks_nms(coords[idx], scores[idx], areas[idx], thr, sigmas)
        else:
            kept, decayed = soft_oks_nms(coords[idx], scores[idx], areas[idx], thr, sigmas)
            new_scores[idx[kept]] = decayed
        keep_all.append(idx[kept])
    return np.sort(np.concatenate(keep_all)), new_scores


def select_instances(coords, joint_scores, box_scores, image_ids, areas, rescore: str = "authors",
                     score_threshold: float = 0.2, oks_nms=None, nms_threshold: float | None = None,
                     sigmas=None) -> tuple[np.ndarray, np.ndarray]:
    """Rescoring then per-image OKS-NMS, the test-time step after decoding: (indices kept, in input order;
    instance scores of all N instances)."""
    inst = instance_scores(joint_scores, box_scores, rescore, score_threshold)
    return oks_nms_per_image(coords, inst, areas, image_ids, oks_nms, nms_threshold, sigmas)


def coco_results(image_ids, coords, joint_scores, scores, category_id: int = 1, boxes=None) -> list[dict]:
    """COCO keypoint results entries ``{image_id, category_id, keypoints [x, y, score] * K, score}`` (plus
    ``bbox`` [x, y, w, h] when ``boxes`` are given) from arrays: coords [N, K, 2] image px, joint scores
    [N, K], instance scores [N], image ids [N]."""
    coords = np.asarray(coords, np.float64)
    joint_scores = np.asarray(joint_scores, np.float64).reshape(coords.shape[:2])
    flat = np.concatenate([coords, joint_scores[..., None]], axis=2).reshape(coords.shape[0], 3 * coords.shape[1])
    out = []
    for i in range(coords.shape[0]):
        entry = {"image_id": int(np.asarray(image_ids).reshape(-1)[i]), "category_id": int(category_id),
                 "keypoints": flat[i].tolist(), "score": float(np.asarray(scores).reshape(-1)[i])}
        if boxes is not None:
            entry["bbox"] = [float(v) for v in np.asarray(boxes, np.float64)[i]]
        out.append(entry)
    return out
