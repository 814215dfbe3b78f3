"""Drawing: a new image of the same size, joints and limbs where they should be, side colours."""

from __future__ import annotations

import numpy as np
import pytest

from rsn_lightning.keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS
from rsn_lightning.visualize import (
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    draw_crops_grid,
    draw_pose,
    joint_sides,
    make_grid,
)


def pose():
    rng = np.random.default_rng(0)
    return rng.uniform(20, 180, (1, 17, 2)), np.full((1, 17), 1.0)


def test_draws_on_a_copy_at_the_joints():
    img = np.full((200, 220, 3), 40, np.uint8)
    kpts, scores = pose()
    scores[0, 3] = 0.1  # below the threshold: not drawn
    kpts[0, 3] = (210, 190)  # away from every other joint and limb
    out = draw_pose(img, kpts, scores, COCO_KEYPOINTS, score_thr=0.3)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.all(img == 40)  # the input is untouched
    for j in range(17):
        x, y = np.round(kpts[0, j]).astype(int)
        changed = np.any(out[y, x] != 40)
        assert changed == (j != 3), j


def test_limb_colours_by_side():
    sides = joint_sides(COCO_KEYPOINTS)
    assert sides[0] == 0 and sides[5] == -1 and sides[6] == 1
    assert joint_sides(MPII_KEYPOINTS)[0] == 1  # right_ankle
    img = np.zeros((100, 300, 3), np.uint8)
    kpts = np.zeros((1, 17, 2))
    kpts[0, :] = (-1000, -1000)  # off-picture
    # left elbow -> left wrist (left limb), right elbow -> right wrist, left -> right shoulder (centre)
    kpts[0, 7], kpts[0, 9] = (20, 20), (80, 20)
    kpts[0, 8], kpts[0, 10] = (20, 50), (80, 50)
    kpts[0, 5], kpts[0, 6] = (150, 80), (280, 80)
    scores = np.ones((1, 17))
    out = draw_pose(img, kpts, scores, COCO_KEYPOINTS, thickness=3, radius=2)
    assert tuple(out[20, 50]) == LEFT_COLOR
    assert tuple(out[50, 50]) == RIGHT_COLOR
    assert tuple(out[80, 215]) == CENTER_COLOR
    assert len({LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR}) == 3


def test_grid_helpers():
    crops = np.zeros((5, 64, 48, 3), np.uint8)
    kpts, scores = pose()
    k = np.repeat(kpts * 0.25, 5, axis=0)
    s = np.repeat(scores, 5, axis=0)
    grid = draw_crops_grid(crops, k, s, COCO_KEYPOINTS, ncols=3)
    assert grid.shape == (2 * 64 + 3 * 2, 3 * 48 + 4 * 2, 3)
    assert grid[2:66, 2:50].any()  # the first tile has a pose drawn
    with pytest.raises(ValueError, match="one size"):
        make_grid([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
