"""Scoring one validation's predictions (every rank's, each sample once): COCO keypoint AP/AR or MPII
PCKh, with the predictions written as a COCO-format results JSON either way. Pure: arrays in, a flat dict
of numbers out, no Lightning.

``preds`` holds per instance ``coords`` [N, K, 2] and ``scores`` [N, K] (image px, 0-based),
``box_score``, ``image_id`` and ``index`` (the val dataset's sample) [N], ``center`` and ``scale`` [N, 2]
(the crop's centre and size in image px), as ``training.metrics.ValidationPredictions`` gathers them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsn_lightning.evaluation.postprocess import instance_scores


def coco_validation(preds: dict, ann_file, sigmas, rescore: str, score_threshold: float, oks_nms,
                    nms_threshold=None, results_path=None) -> dict[str, float]:
    """COCO's 10 keypoint stats and ``per_keypoint/<joint>/<figure>``; the results JSON (after rescoring
    and OKS-NMS) goes to ``results_path`` when given."""
    from rsn_lightning.evaluation.coco_eval import CocoKeypointEvaluator

    evaluator = CocoKeypointEvaluator(ann_file, sigmas=sigmas, rescore=rescore, score_threshold=score_threshold,
                                      oks_nms=oks_nms, nms_threshold=nms_threshold)
    stats = evaluator.evaluate_arrays(preds["coords"], preds["scores"], preds["box_score"], preds["image_id"],
                                      results_path=results_path, areas=np.prod(preds["scale"], axis=1))
    flat = {k: v for k, v in stats.items() if np.isscalar(v)}
    for name, figures in (stats.get("per_keypoint") or {}).items():
        if name == "count":
            continue
        if isinstance(figures, dict):
            flat.update({f"per_keypoint/{name}/{k}": v for k, v in figures.items() if np.isscalar(v)})
        elif np.isscalar(figures):
            flat[f"per_keypoint/{name}"] = figures
    return flat


def mpii_validation(preds: dict, ground_truth: dict, image_names, rescore: str, score_threshold: float,
                    results_path=None) -> dict[str, float]:
    """The MPII PCKh table (percent) under the names the configs monitor (``PCKh``, ``PCKh@0.1``, Head ..
    Ankle). ``ground_truth``: ``joints``, ``visible``, ``head_size`` of the same instances (the MPII
    dataset's ``pckh_ground_truth``). The predictions go to ``results_path`` as COCO results (image_id,
    category_id 1, keypoints x, y, score per joint in 0-based image px, instance score) plus ``image``,
    the image's file name, so they can be scored again or compared outside this library."""
    from rsn_lightning.evaluation.pckh import pckh_table

    table = pckh_table(preds["coords"], ground_truth["joints"], ground_truth["visible"], ground_truth["head_size"])
    table["PCKh"] = table.pop("Mean")
    if "Mean@0.1" in table:
        table["PCKh@0.1"] = table.pop("Mean@0.1")
    if results_path is not None:
        scores = instance_scores(preds["scores"], preds["box_score"], rescore, score_threshold)
        results = [{"image_id": int(image_id), "category_id": 1, "image": str(name),
                    "keypoints": [float(v) for v in np.concatenate([xy, s[:, None]], axis=1).reshape(-1)],
                    "score": float(score)}
                   for image_id, name, xy, s, score in zip(preds["image_id"], image_names, preds["coords"],
                                                           preds["scores"], scores)]
        path = Path(results_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, allow_nan=False))
    return table
