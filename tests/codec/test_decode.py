"""Decoding: known keypoints through independently built targets, and the authors' algorithm."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rsn_lightning.codec import (
    decode_heatmaps,
    decode_heatmaps_to_input,
    decode_quantisation,
)
from rsn_lightning.evaluation.postprocess import instance_scores

INPUT = (192, 256)  # (W, H)
HEAT = (48, 64)


def make_target(points_input, heat=HEAT, kernel=11):
    """Training-style target: a delta at floor(x/4) blurred by cv2.GaussianBlur, peak scaled to 255."""
    k = len(points_input)
    maps = np.zeros((k, heat[1], heat[0]), np.float32)
    for j, (x, y) in enumerate(points_input):
        cx, cy = int(np.floor(x / 4)), int(np.floor(y / 4))
        maps[j, cy, cx] = 1.0
        # zero outside the map: OpenCV's default reflected border would move peaks near the edge
        maps[j] = cv2.GaussianBlur(maps[j], (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
        maps[j] *= 255.0 / maps[j].max()
    return maps


def reference_authors(maps, kernel=5, shift=0.25, border=10):
    """Straight per-map transcription of the algorithm described in the authors' get_results."""
    k, h, w = maps.shape
    coords, scores = np.zeros((k, 2)), np.zeros(k)
    for j in range(k):
        dr = np.zeros((h + 2 * border, w + 2 * border))
        dr[border:-border, border:-border] = maps[j]
        dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
        y, x = np.unravel_index(dr.argmax(), dr.shape)
        dr[y, x] = 0
        x, y = float(x - border), float(y - border)
        py, px = np.unravel_index(dr.argmax(), dr.shape)
        px, py = px - border - x, py - border - y
        ln = (px ** 2 + py ** 2) ** 0.5
        if ln > 1e-3:
            x += shift * px / ln
            y += shift * py / ln
        x, y = max(0, min(x, w - 1)), max(0, min(y, h - 1))
        coords[j] = (x * 4 + 2, y * 4 + 2)
        scores[j] = maps[j, int(round(y) + 1e-9), int(round(x) + 1e-9)] / 255 + 0.5
    return coords, scores


@pytest.mark.parametrize("method", ["authors", "sign", "dark"])
def test_target_round_trip_within_quantisation(method):
    rng = np.random.default_rng(0)
    # the claim holds blur_kernel // 2 cells away from the border: nearer, the zero padding pulls the
    # blurred peak of an edge-truncated target inwards (as in the authors' code)
    m = 4 * (5 // 2)
    pts = np.stack([rng.uniform(m, INPUT[0] - m, 40), rng.uniform(m, INPUT[1] - m, 40)], axis=1)
    maps = make_target(pts)[None]
    # an image crop twice the input size, offset: tests the way back to image pixels too
    center = np.array([[500.0, 300.0]])
    scale = np.array([[2.0 * INPUT[0], 2.0 * INPUT[1]]])
    coords, scores = decode_heatmaps(maps, center, scale, INPUT, method=method, blur_kernel=5)
    truth = pts * 2.0 + (center - scale / 2.0)
    bound = 2.0 * decode_quantisation(INPUT, HEAT, 0.25)  # input px bound x 2 (image/input ratio)
    err = np.abs(coords[0] - truth)
    assert np.all(err <= bound[None] + 1e-9), err.max(axis=0)
    # the decoded point stays in the peak cell, so the score is read at the peak: 255/255 + 0.5
    np.testing.assert_allclose(scores, 1.5, atol=1e-6)


def test_authors_quantisation_is_tight():
    """Cell centre 4i+2 plus a 0.25-cell step: every decoded point is exactly 1 input px from it."""
    pts = np.array([[50.3, 77.9], [10.0, 200.1], [150.7, 30.2]])
    coords, _ = decode_heatmaps_to_input(make_target(pts)[None], INPUT)
    centre = np.floor(pts / 4) * 4 + 2
    np.testing.assert_allclose(np.linalg.norm(coords[0] - centre, axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("kernel", [5, 9])
def test_vectorised_matches_per_map_reference(kernel):
    rng = np.random.default_rng(1)
    # noisy maps with several bumps, negative values and peaks near the border
    maps = rng.normal(0, 20, (3, 17, HEAT[1], HEAT[0]))
    for n in range(3):
        for j in range(17):
            x, y = rng.integers(0, HEAT[0]), rng.integers(0, HEAT[1])
            maps[n, j, y, x] += 300
    coords, scores = decode_heatmaps_to_input(maps, INPUT, blur_kernel=kernel)
    for n in range(3):
        ref_c, ref_s = reference_authors(maps[n], kernel=kernel)
        np.testing.assert_allclose(coords[n], ref_c, atol=1e-9)
        np.testing.assert_allclose(scores[n], ref_s, atol=1e-12)


def test_dark_recovers_subpixel_peak():
    mu = np.array([[20.37, 31.81], [7.62, 50.15]])  # heatmap cells
    yy, xx = np.mgrid[0:HEAT[1], 0:HEAT[0]]
    maps = np.stack([255 * np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / (2 * 2.0 ** 2)) for mx, my in mu])
    coords, _ = decode_heatmaps_to_input(maps[None], INPUT, method="dark", blur_kernel=5)
    np.testing.assert_allclose(coords[0], mu * 4 + 2, atol=0.1)
    # the authors' quarter-cell step cannot get that close to an off-grid peak
    coarse, _ = decode_heatmaps_to_input(maps[None], INPUT, method="authors")
    assert np.abs(coarse[0] - (mu * 4 + 2)).max() > 0.3


def test_bad_method_and_empty_batch():
    with pytest.raises(ValueError, match="unknown decoding method"):
        decode_heatmaps(np.zeros((1, 17, 64, 48)), np.zeros((1, 2)), np.ones((1, 2)), INPUT, method="x")
    coords, scores = decode_heatmaps(np.zeros((0, 17, 64, 48)), np.zeros((0, 2)), np.ones((0, 2)), INPUT)
    assert coords.shape == (0, 17, 2) and scores.shape == (0, 17)


def test_instance_scores_modes():
    js = np.array([[0.1, 0.5, 0.9, 0.15], [0.05, 0.1, 0.0, 0.19]])
    box = np.array([0.8, 0.5])
    np.testing.assert_allclose(instance_scores(js, box, "authors"), [0.8 * 1.65 / 4, 0.5 * 0.34 / 4])
    np.testing.assert_allclose(instance_scores(js, box, "mmpose", 0.2), [0.8 * 0.7, 0.0])
