"""MPII PCKh: ground truth as predictions on mpii_mini, and hand-checked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsn_lightning.evaluation.analysis import pck
from rsn_lightning.evaluation.pckh import head_size_from_box, pckh, pckh_table


def load_mpii(mpii_mini_dir):
    ann = json.loads((mpii_mini_dir / "test_mpii.json").read_text())
    joints = np.array([a["joints"] for a in ann], np.float64)
    vis = np.array([a["joints_vis"] for a in ann])
    # test_mpii.json carries no head boxes: a box spanning upper neck -> head top stands in for one
    box = np.concatenate([joints[:, 8], joints[:, 9]], axis=1)
    return joints, vis, head_size_from_box(box)


def test_ground_truth_gives_one(mpii_mini_dir):
    joints, vis, hs = load_mpii(mpii_mini_dir)
    per_joint, count = pckh(joints, joints, vis, hs, 0.5)
    np.testing.assert_array_equal(per_joint[count > 0], 1.0)
    table = pckh_table(joints, joints, vis, hs)
    for name in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"):
        assert table[name] == pytest.approx(100.0), name


def test_threshold_and_head_size():
    box = np.array([[0.0, 0.0, 30.0, 40.0]])  # diagonal 50 -> head size 0.6 * 50 = 30
    hs = head_size_from_box(box)
    np.testing.assert_allclose(hs, [30.0])
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, :, 0] = np.linspace(0, 30, 16)  # errors 0, 2, ..., 30 px
    vis = np.ones((1, 16))
    got, _ = pckh(pred, gt, vis, hs, 0.5)
    np.testing.assert_array_equal(got, (np.linspace(0, 30, 16) <= 15.0).astype(float))
    # invisible joints do not count
    vis[0, 15] = 0
    got, count = pckh(pred, gt, vis, hs, 0.5)
    assert np.isnan(got[15]) and count[15] == 0


def test_table_groups_and_mean_exclusions():
    n = 4
    gt = np.random.default_rng(0).uniform(0, 100, (n, 16, 2))
    vis = np.ones((n, 16))
    hs = np.full(n, 10.0)
    pred = gt.copy()
    pred[:, [6, 7]] += 50.0  # pelvis and thorax wrong: the Mean ignores them
    assert pckh_table(pred, gt, vis, hs)["Mean"] == pytest.approx(100.0)
    pred = gt.copy()
    pred[:2, 9] += 50.0  # head top wrong in half the people
    pred[:, 15] += 50.0  # left wrist always wrong
    table = pckh_table(pred, gt, vis, hs, per_joint=True)
    assert table["Head"] == pytest.approx(50.0)
    assert table["Wrist"] == pytest.approx(50.0)  # (0 + 100) / 2
    assert table["Mean"] == pytest.approx(100.0 * (14 * n - 2 - n) / (14 * n))
    assert table["PCKh/left_wrist"] == 0.0
    # 0.1 is stricter: an error of 3 px with head size 10 passes @0.5, fails @0.1
    pred = gt + np.array([3.0, 0.0])
    table = pckh_table(pred, gt, vis, hs)
    assert table["Mean"] == pytest.approx(100.0) and table["Mean@0.1"] == 0.0


def test_generic_pck_matches_pckh():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 100, (5, 16, 2))
    pred = gt + rng.normal(0, 4, gt.shape)
    vis = rng.integers(0, 2, (5, 16))
    hs = rng.uniform(5, 15, 5)
    a, _ = pck(pred, gt, vis, hs, 0.5)
    b, _ = pckh(pred, gt, vis, hs, 0.5)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)])
