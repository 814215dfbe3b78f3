"""The pure scoring of a validation's predictions: MPII PCKh and its results JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsn_lightning.evaluation.validation import mpii_validation


def test_mpii_validation_scores_pckh_and_writes_coco_style_results(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 400, (2, 16, 2))
    # head size 10: the first person exact, the second 3 px off on every joint (within 0.5 x 10, not 0.1 x 10)
    coords = gt.copy()
    coords[1] += [3.0, 0.0]
    preds = {"coords": coords, "scores": np.full((2, 16), 0.5), "box_score": np.ones(2), "image_id": np.array([7, 9]),
             "index": np.array([0, 1]), "center": gt.mean(axis=1), "scale": np.full((2, 2), 200.0)}
    ground_truth = {"joints": gt, "visible": np.ones((2, 16)), "head_size": np.full(2, 10.0)}
    path = tmp_path / "results" / "val_epoch000.json"
    table = mpii_validation(preds, ground_truth, ["a.jpg", "b.jpg"], "authors", 0.2, results_path=path)
    assert table["PCKh"] == pytest.approx(100.0)
    assert table["PCKh@0.1"] == pytest.approx(50.0)
    assert table["Wrist"] == pytest.approx(100.0)
    results = json.loads(path.read_text())
    assert [(r["image_id"], r["image"], r["category_id"]) for r in results] == [(7, "a.jpg", 1), (9, "b.jpg", 1)]
    # x, y, score per joint; instance score = box score x mean joint score (the authors' rescoring)
    assert np.allclose(np.reshape(results[1]["keypoints"], (16, 3)), np.c_[coords[1], np.full(16, 0.5)])
    assert [r["score"] for r in results] == [0.5, 0.5]
