"""OKS-NMS and soft-OKS-NMS on small hand-made scenes."""

from __future__ import annotations

import numpy as np

from rsn_lightning.evaluation.oks_nms import oks_nms, oks_overlap, soft_oks_nms
from rsn_lightning.keypoints import COCO_KEYPOINTS


def scene():
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, (17, 2))
    near = base + 1.0  # a near-duplicate
    far = base + 300.0
    kpts = np.stack([base, near, far])
    return kpts, np.array([0.9, 0.95, 0.5]), np.full(3, 10000.0)


def test_oks_overlap_values():
    kpts, _, areas = scene()
    sig = np.asarray(COCO_KEYPOINTS.sigmas)
    ovr = oks_overlap(kpts[0], kpts[1:], areas[0], areas[1:])
    # independent evaluation of COCO's formula for the (1, 1) px offset
    expected = np.mean(np.exp(-2.0 / (2 * sig) ** 2 / 10000.0 / 2))
    np.testing.assert_allclose(ovr, [expected, 0.0], atol=1e-12)
    np.testing.assert_allclose(oks_overlap(kpts[0], kpts[:1], 5000, [5000]), [1.0])


def test_oks_nms_keeps_best_and_distinct():
    kpts, scores, areas = scene()
    np.testing.assert_array_equal(oks_nms(kpts, scores, areas, thr=0.9), [1, 2])
    # a threshold above the pair's OKS keeps everything
    ovr = oks_overlap(kpts[1], kpts[:1], areas[1], areas[:1])[0]
    np.testing.assert_array_equal(np.sort(oks_nms(kpts, scores, areas, thr=ovr + 1e-6)), [0, 1, 2])


def test_soft_oks_nms_decays_duplicates():
    kpts, scores, areas = scene()
    keep, new = soft_oks_nms(kpts, scores, areas, thr=0.3)
    ovr = oks_overlap(kpts[1], kpts[:1], areas[1], areas[:1])[0]
    decayed = 0.9 * np.exp(-ovr ** 2 / 0.3)
    assert decayed < 0.5  # so the far instance moves ahead of the duplicate
    np.testing.assert_array_equal(keep, [1, 2, 0])
    np.testing.assert_allclose(new, [0.95, 0.5, decayed])
    keep2, _ = soft_oks_nms(kpts, scores, areas, thr=0.3, max_dets=2)
    np.testing.assert_array_equal(keep2, [1, 2])
