"""Heatmap targets: equal to the authors' blur construction, peaks, levels, weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rsn_lightning.codec import HeatmapTargetGenerator, unit_target_level

INPUT = (192, 256)  # W, H -> heatmaps 48 x 64


def authors_target(x, y, kernel, input_size=INPUT):
    """The construction of the authors' generate_heatmap, written out with cv2 for one joint."""
    in_w, in_h = input_size
    out_w, out_h = in_w // 4, in_h // 4
    hm = np.zeros((out_h, out_w), np.float32)
    hm[int(y * out_h / in_h), int(x * out_w / in_w)] = 1
    hm = cv2.GaussianBlur(hm, (kernel, kernel), 0)
    return hm / (hm.max() / 255)


@pytest.mark.parametrize("kernels", [(15, 11, 9, 7, 5), (3, 13)])
def test_equals_cv2_blur_construction_everywhere_including_borders(kernels):
    gen = HeatmapTargetGenerator(INPUT, kernels)
    rng = np.random.default_rng(1)
    # every border cell and its neighbours, corners, and random interior points
    xs = [0.0, 3.9, 4.0, 7.5, 8.0, 12.0, 183.0, 187.9, 188.0, 191.0]
    ys = [0.0, 4.5, 8.0, 247.0, 251.0, 252.0, 255.0]
    pts = [(x, y) for x in xs for y in ys] + [tuple(p) for p in rng.uniform(0, [191, 255], (60, 2))]
    joints = np.array(pts)
    heatmaps, weight = gen(joints, np.full(len(joints), 2.0))
    assert weight.min() == 1
    worst = 0.0
    for level, k in enumerate(kernels):
        for i, (x, y) in enumerate(pts):
            worst = max(worst, float(np.abs(heatmaps[level, i] - authors_target(x, y, k)).max()))
    assert worst < 1e-4


def test_peak_is_255_at_the_joint_cell_and_kernels_narrow_per_level():
    gen = HeatmapTargetGenerator(INPUT)
    joints = np.array([[101.0, 57.0], [20.5, 200.2]])
    heatmaps, _ = gen(joints, np.array([2, 1]))
    assert heatmaps.shape == (5, 2, 64, 48) and heatmaps.dtype == np.float32
    widths = []
    for level in range(5):
        for i, (x, y) in enumerate(joints):
            hm = heatmaps[level, i]
            assert np.unravel_index(hm.argmax(), hm.shape) == (int(y // 4), int(x // 4))
            assert hm.max() == pytest.approx(255.0, abs=1e-3)
        widths.append(int((heatmaps[level, 0] > 1.0).sum()))
    # coarse to fine: the 15x15 map covers the most cells, the 5x5 the fewest
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    # the 5x5 level's support is exactly the kernel's 5x5 square
    assert int((heatmaps[4, 0] > 0).sum()) == 25


def test_zero_weight_and_empty_map_for_unlabelled_and_out_of_crop_joints():
    gen = HeatmapTargetGenerator(INPUT)
    joints = np.array([[50.0, 50.0], [50.0, 50.0], [-0.5, 10.0], [191.5, 10.0], [10.0, 255.5],
                       [np.nan, 3.0], [191.0, 255.0]])
    vis = np.array([2, 0, 2, 2, 1, 2, 1])
    heatmaps, weight = gen(joints, vis)
    assert weight.tolist() == [1, 0, 0, 0, 0, 0, 1]
    assert heatmaps[:, weight == 0].max() == 0
    assert heatmaps[:, weight == 1].max() == pytest.approx(255.0, abs=1e-3)


def test_gaussian_option_is_an_unnormalised_gaussian_of_the_given_sigma():
    gen = HeatmapTargetGenerator(INPUT, kernels=(15, 5), target_type="gaussian", sigma=2.0)
    x, y = 77.0, 130.0
    heatmaps, _ = gen(np.array([[x, y]]), np.array([2]))
    cx, cy = int(x // 4), int(y // 4)
    yy, xx = np.mgrid[0:64, 0:48]
    expected = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.0**2))
    np.testing.assert_allclose(heatmaps[0, 0], expected, atol=1e-3)
    np.testing.assert_allclose(heatmaps[1, 0], expected, atol=1e-3)
    per_level = HeatmapTargetGenerator(INPUT, kernels=(15, 5), target_type="gaussian")
    assert per_level.sigmas[0] == pytest.approx(2.6) and per_level.sigmas[1] == pytest.approx(1.1)


def test_unbiased_option_centres_the_gaussian_on_the_continuous_joint():
    gen = HeatmapTargetGenerator(INPUT, kernels=(15, 5), target_type="unbiased")
    joints = np.array([[77.3, 130.9], [10.0, 20.0], [-3.0, 5.0]])
    heatmaps, weight = gen(joints, np.array([2, 0, 2]))
    assert weight.tolist() == [1, 0, 0]
    yy, xx = np.mgrid[0:64, 0:48]
    for level, sigma in enumerate(gen.sigmas):
        cx, cy = 77.3 / 4 - 0.5, 130.9 / 4 - 0.5  # the decoder maps cell u back to 4u + 2
        expected = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        np.testing.assert_allclose(heatmaps[level, 0], expected, atol=1e-3)
    assert heatmaps[:, 1:].max() == 0


def test_unbiased_targets_with_dark_decoding_recover_sub_cell_positions():
    """The point of the option: the authors' cell targets lose up to 2 input px per axis at stride 4
    (half a cell, +- the quarter shift); unbiased targets decoded by DARK keep the position."""
    from rsn_lightning.codec import decode_heatmaps_to_input

    small = (96, 128)
    rng = np.random.default_rng(0)
    joints = np.stack([rng.uniform(12, 84, 200), rng.uniform(12, 116, 200)], axis=1)
    vis = np.full(200, 2)
    errors = {}
    for target_type, method in (("kernel", "authors"), ("unbiased", "dark")):
        gen = HeatmapTargetGenerator(small, kernels=(7,), target_type=target_type)
        maps = np.stack([gen(joints[i:i + 1], vis[:1])[0][-1] for i in range(len(joints))])
        coords, _ = decode_heatmaps_to_input(maps, small, method=method)
        errors[target_type] = np.abs(coords[:, 0] - joints)
    assert errors["unbiased"].max() < 0.1
    assert errors["kernel"].max() > 1.5 and errors["kernel"].mean() > 0.5


def test_unit_target_level_follows_the_coarse_to_fine_rule():
    kernels = [15, 11, 9, 7, 5]
    assert [kernels[unit_target_level(0, j, 1, 5)] for j in range(4)] == [11, 9, 7, 5]
    four = [[kernels[unit_target_level(s, j, 4, 5)] for j in range(4)] for s in range(4)]
    assert four[0] == four[1] == four[2] == [15, 11, 9, 7] and four[3] == [11, 9, 7, 5]
    assert [unit_target_level(0, j, 1, 4) for j in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        unit_target_level(0, 0, 1, 3)
