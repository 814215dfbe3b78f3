"""A results file on ../shared/data/coco_mini with every error type of the Ronchi & Perona taxonomy,
built from the ground truth by rules (no randomness), so the expected counts are known by design and
the AP figures can be compared with matteorr/coco-analyze run once on the same file."""

from __future__ import annotations

import numpy as np

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def distance_for_similarity(area: float, joint: int, similarity: float) -> float:
    """Pixel distance at which COCO's keypoint similarity of ``joint`` equals ``similarity``
    (exp(-d^2 / (8 sigma^2 area)) = similarity)."""
    return float(np.sqrt(-np.log(similarity) * 8.0 * COCO_SIGMAS[joint] ** 2 * area))


def _pose(ann) -> np.ndarray:
    """[17, 3] prediction copied from a ground truth: unlabelled joints at the box centre, score 1."""
    kp = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
    x, y, w, h = ann["bbox"]
    out = kp.copy()
    out[kp[:, 2] == 0, :2] = (x + w / 2, y + h / 2)
    out[:, 2] = 1.0
    return out


def _shift(pose, ann, joints, similarity, direction=(1.0, 0.0)):
    direction = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    for j in joints:
        pose[j, :2] += direction * distance_for_similarity(ann["area"], j, similarity)
    return pose


def crafted_results(gt: dict) -> list[dict]:
    """The crafted detections (COCO results format) for coco_mini's ``test_coco.json`` dict.

    - image 785, person 442619: wrists exchanged (2 inversions), elbows at similarity 0.7 (2 jitters),
      left ankle far below (1 miss); the other 12 joints exact.
    - image 197388: 437295's left wrist put on 533949's left wrist (1 swap); 533949 with knees at
      similarity 0.6 (2 jitters); 467657 and 543117 exact; 531914 not detected (a false negative).
    - image 196141: 460541 exact but scored 0.3, and a duplicate of it with every joint at similarity
      0.6 scored 0.95: the duplicate takes the person (14 jitters and 1 inversion, its right hip being
      nearer the flipped one) and the exact copy is left unmatched until the scores are corrected (a
      scoring error); 1717641 with its hips far away (2 misses); 488308 exact; 1724673 with every
      joint at similarity 0.9 (good).
    - image 40083: 198196 exact; 230195 with its shoulders exchanged (2 inversions); and a pose of half
      198196's size in the empty top-right corner scored 0.97 (a background false positive).
    """
    anns = {a["id"]: a for a in gt["annotations"]}
    results = []

    def add(image_id, pose, score):
        results.append({"image_id": image_id, "category_id": 1, "keypoints": pose.reshape(-1).round(3).tolist(),
                        "score": score})

    a = anns[442619]
    p = _pose(a)
    p[[9, 10]] = p[[10, 9]]
    _shift(p, a, [7, 8], 0.7)
    _shift(p, a, [15], 1e-4, direction=(0.0, 1.0))
    add(785, p, 0.9)

    a, other = anns[437295], anns[533949]
    p = _pose(a)
    p[9, :2] = np.asarray(other["keypoints"][27:29], np.float64)
    add(197388, p, 0.85)
    add(197388, _shift(_pose(other), other, [13, 14], 0.6), 0.8)
    add(197388, _pose(anns[467657]), 0.7)
    add(197388, _pose(anns[543117]), 0.6)

    a = anns[460541]
    add(196141, _pose(a), 0.3)
    add(196141, _shift(_pose(a), a, range(17), 0.6, direction=(0.6, 0.8)), 0.95)
    a = anns[1717641]
    add(196141, _shift(_pose(a), a, [11, 12], 1e-4, direction=(0.0, 1.0)), 0.75)
    add(196141, _pose(anns[488308]), 0.65)
    a = anns[1724673]
    add(196141, _shift(_pose(a), a, range(17), 0.9), 0.5)

    a = anns[198196]
    add(40083, _pose(a), 0.9)
    b = anns[230195]
    p = _pose(b)
    p[[5, 6]] = p[[6, 5]]
    add(40083, p, 0.88)
    p = _pose(a)
    x, y, w, h = a["bbox"]
    p[:, :2] = (p[:, :2] - (x, y)) * 0.5 + (500 - w * 0.5 - 2, 2)
    add(40083, p, 0.97)
    return results
