"""The COCO evaluation workload: both backends score the generated results file alike."""

from __future__ import annotations

import pytest

from rsn_lightning.bench.evals import bench_eval


def test_faster_coco_eval_gives_pycocotools_stats():
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval not installed (pip install '.[fast-eval]')")
    py, fast = bench_eval(num_images=300, dets_per_image=10, progress=lambda *_: None)
    assert py["num_detections"] == fast["num_detections"] == 3000
    assert 0.05 < py["AP"] < 0.95
    assert fast["max_stat_difference"] == 0.0
