"""The detector-like boxes of the val split: realistic misses, jitter and false positives, and a good
pose model on them can still score a high AP."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from pycocotools.cocoeval import COCOeval

from .files import keypoints_of, load_coco


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_detections_realistic(root):
    gt = load_coco(root / "annotations/person_keypoints_val.json")
    dets = json.loads((root / "annotations/person_detections_val.json").read_text())
    assert {d["image_id"] for d in dets} <= set(gt.getImgIds())
    assert all(d["category_id"] == 1 and 0 < d["score"] <= 1 and len(d["bbox"]) == 4 for d in dets)
    matched_iou, matched_score, fp_score, missed, n_gt = [], [], [], 0, 0
    for img_id in gt.getImgIds():
        boxes = [a["bbox"] for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id))]
        n_gt += len(boxes)
        used = set()
        for d in sorted((d for d in dets if d["image_id"] == img_id), key=lambda d: -d["score"]):
            ious = [(_iou(d["bbox"], b), i) for i, b in enumerate(boxes) if i not in used]
            best = max(ious, default=(0.0, -1))
            if best[0] >= 0.5:
                used.add(best[1])
                matched_iou.append(best[0])
                matched_score.append(d["score"])
            else:
                fp_score.append(d["score"])
        missed += len(boxes) - len(used)
    matched_iou = np.array(matched_iou)
    assert 1 <= missed <= 0.08 * n_gt, (missed, n_gt)
    assert 0.1 <= len(fp_score) / len(gt.getImgIds()) <= 0.7
    assert (matched_iou > 0.7).mean() > 0.9 and np.median(matched_iou) > 0.8
    assert np.mean(matched_score) > 0.8 > np.mean(fp_score)


def test_detections_allow_high_ap(root):
    """A perfect pose model run on the detected boxes (the GT pose of the matching person) scores high."""
    gt = load_coco(root / "annotations/person_keypoints_val.json")
    dets = json.loads((root / "annotations/person_detections_val.json").read_text())
    rng = np.random.default_rng(0)
    results = []
    for d in dets:
        anns = gt.loadAnns(gt.getAnnIds(imgIds=d["image_id"]))
        best = max(anns, key=lambda a: _iou(d["bbox"], a["bbox"]), default=None)
        if best is not None and _iou(d["bbox"], best["bbox"]) >= 0.5:
            kps = keypoints_of(best)
        else:  # a false positive still gets a pose: spread over its box
            x, y, w, h = d["bbox"]
            kps = np.stack([x + rng.random(17) * w, y + rng.random(17) * h, np.ones(17)], 1)
        results.append({"image_id": d["image_id"], "category_id": 1, "score": d["score"],
                        "keypoints": kps.ravel().tolist()})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.85 < ev.stats[0] < 1.0  # misses cost something, but a good model can score well
