"""The augmented crop and its keypoints stay on the same image content (markers painted at the joints
before the warp are found under the transformed joints), and without augmentation decoded targets map
back to the original keypoints."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from rsn_lightning.data.transforms import (
    COCO_AUGMENT,
    AugmentConfig,
    TopDownTransform,
    compose_affine,
    flip_matrix,
)
from rsn_lightning.geometry import heatmap_to_input, input_to_image
from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.normalization import InputNormalization

INPUT = (192, 256)
NORM = InputNormalization()
# 17 well-separated saturated BGR colours
COLORS = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255], [255, 0, 255], [255, 255, 0],
                   [0, 128, 255], [255, 128, 0], [128, 0, 255], [0, 255, 128], [128, 255, 0],
                   [255, 0, 128], [255, 255, 255], [0, 0, 128], [0, 128, 0], [128, 0, 0], [128, 128, 255]])


def coco_people(coco_mini_dir):
    coco = json.loads((coco_mini_dir / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    people = []
    for ann in coco["annotations"]:
        joints = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        if (joints[:, 2] > 0).sum() >= 8:
            people.append((coco_mini_dir / files[ann["image_id"]], ann, joints))
    return people


def paint_markers(image, joints, radius=4, min_gap=14.0):
    """Paint a coloured disc on each labelled joint far enough from the others; returns which."""
    img = image.copy()
    painted = []
    xy = joints[:, :2]
    for i in np.flatnonzero(joints[:, 2] > 0):
        others = [j for j in np.flatnonzero(joints[:, 2] > 0) if j != i]
        if others and np.linalg.norm(xy[others] - xy[i], axis=1).min() < min_gap:
            continue
        cv2.circle(img, (int(round(xy[i, 0])), int(round(xy[i, 1]))), radius, COLORS[i].tolist(), -1)
        painted.append(i)
    return img, painted


def record_of(ann, joints, index=0):
    x, y, w, h = ann["bbox"]
    return {"center": np.array([x + w / 2, y + h / 2]), "scale": np.array([w, h]), "joints": joints,
            "image_id": ann["image_id"], "area": ann["area"], "box_score": 1.0, "index": index}


def check_markers(crop, sample_joints, painted, source_of, tol=60):
    """For each sample joint j whose source joint (source_of[j]) was painted and is inside the crop,
    the crop pixel under it has that source joint's colour."""
    checked = 0
    for j in range(len(sample_joints)):
        src = source_of[j]
        if src not in painted:
            continue
        x, y = sample_joints[j, :2]
        if not (2 <= x <= INPUT[0] - 3 and 2 <= y <= INPUT[1] - 3):
            continue
        pix = crop[int(round(y)), int(round(x))].astype(int)
        assert np.abs(pix - COLORS[src]).max() <= tol, (j, src, pix, COLORS[src])
        checked += 1
    return checked


@pytest.mark.parametrize("mode", ["rotate_scale", "flip", "half_body", "all"])
def test_keypoints_stay_on_their_image_content(coco_mini_dir, mode):
    probs = {"rotate_scale": dict(prob_rotation=1.0, prob_flip=0.0, prob_half_body=0.0),
             "flip": dict(prob_rotation=0.0, prob_flip=1.0, prob_half_body=0.0),
             "half_body": dict(prob_rotation=0.0, prob_flip=0.0, prob_half_body=1.0),
             "all": dict(prob_rotation=1.0, prob_flip=1.0, prob_half_body=1.0)}[mode]
    cfg = AugmentConfig.from_dict(probs, COCO_AUGMENT)
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=True, augment=cfg, normalization=NORM)
    flipped = cfg.prob_flip > 0
    source_of = COCO_KEYPOINTS.flip_index if flipped else np.arange(17)
    total = 0
    for n, (path, ann, joints) in enumerate(coco_people(coco_mini_dir)):
        image = cv2.imread(str(path))
        painted_img, painted = paint_markers(image, joints)
        for seed in range(3):
            t.seed(100 * n + seed)
            sample = t(painted_img, record_of(ann, joints))
            crop = NORM.denormalize(sample["image"])
            total += check_markers(crop, sample["joints"], painted, source_of)
            # joints keep their (swapped) visibility; weights are 0 exactly for joints outside the crop
            np.testing.assert_array_equal(sample["joints"][:, 2], joints[source_of, 2])
            xy = sample["joints"][:, :2]
            inside = ((xy >= 0) & (xy <= np.array(INPUT) - 1)).all(1)
            np.testing.assert_array_equal(sample["target_weight"], (inside & (joints[source_of, 2] > 0)))
    assert total > 60


def test_flip_swaps_left_and_right_labels(coco_mini_dir):
    """After a flip the joint labelled left_wrist sits where the marker of the original right_wrist
    was drawn; without the swap the check must fail."""
    path, ann, joints = coco_people(coco_mini_dir)[0]
    image, painted = paint_markers(cv2.imread(str(path)), joints)
    cfg = AugmentConfig.from_dict(dict(prob_rotation=0.0, prob_flip=1.0, prob_half_body=0.0), COCO_AUGMENT)
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=True, augment=cfg, normalization=NORM)
    t.seed(0)
    sample = t(image, record_of(ann, joints))
    crop = NORM.denormalize(sample["image"])
    assert check_markers(crop, sample["joints"], painted, COCO_KEYPOINTS.flip_index) >= 6
    with pytest.raises(AssertionError):
        check_markers(crop, sample["joints"], painted, np.arange(17))
    # a mirrored person facing the camera still has the joint labelled left on the image's right: the
    # swap keeps that convention (without it, "left" would land on the image's left)
    left, right = COCO_KEYPOINTS.names.index("left_shoulder"), COCO_KEYPOINTS.names.index("right_shoulder")
    assert (joints[left, 0] > joints[right, 0]) == (sample["joints"][left, 0] > sample["joints"][right, 0])


def test_flip_composed_into_affine_equals_mirroring_the_image_first(coco_mini_dir):
    path, ann, joints = coco_people(coco_mini_dir)[0]
    image = cv2.imread(str(path))
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=False, normalization=NORM)
    center, scale = np.array([300.0, 200.0]), np.array([180.0, 240.0])
    m = t.sample_affine(center, scale, 20.0, True, image.shape[1])
    once = cv2.warpAffine(image, m, INPUT, flags=cv2.INTER_LINEAR)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    m2 = t.sample_affine(np.array([image.shape[1] - 1 - 300.0, 200.0]), scale, 20.0, False, image.shape[1])
    twice = cv2.warpAffine(mirrored, m2, INPUT, flags=cv2.INTER_LINEAR)
    diff = np.abs(once.astype(int) - twice.astype(int))
    if int(cv2.__version__.split(".")[0]) >= 5:
        assert diff.max() <= 1
    else:  # OpenCV 4 warps at 1/32 px (INTER_BITS = 5, imgproc.hpp): a mirrored warp may round an edge
        # pixel the other way (4.8 and 4.14 here: 71 of 49,152 values off by more than 1, at most 6)
        assert diff.max() <= 255 / 32 and (diff > 1).mean() < 0.005
    f = flip_matrix(640)
    np.testing.assert_allclose(compose_affine(f, f), [[1, 0, 0], [0, 1, 0]])


def test_targets_decode_back_to_the_original_keypoints_without_augmentation(coco_mini_dir):
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=False, normalization=NORM, with_targets=True)
    hm_w, hm_h = INPUT[0] // 4, INPUT[1] // 4
    checked = 0
    for n, (path, ann, joints) in enumerate(coco_people(coco_mini_dir)):
        sample = t(cv2.imread(str(path)), record_of(ann, joints, n))
        hm = sample["heatmaps"][-1]
        flat = hm.reshape(len(hm), -1).argmax(axis=1)
        cells = np.stack([flat % hm_w, flat // hm_w], axis=1)
        back = input_to_image(heatmap_to_input(cells)[None], sample["center"], sample["scale"], INPUT)[0]
        tol = 0.5 * sample["scale"] / np.array([hm_w, hm_h]) + 1e-6
        for k in np.flatnonzero(sample["target_weight"] > 0):
            # the authors' reflected blur moves a peak one cell in to the border cell: keep off the edge
            if not (1 <= cells[k, 0] < hm_w - 1 and 1 <= cells[k, 1] < hm_h - 1):
                continue
            assert np.all(np.abs(back[k] - joints[k, :2]) <= tol), (k, back[k], joints[k, :2], tol)
            checked += 1
    assert checked > 100


def test_test_time_crop_uses_the_authors_enlargement():
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=False)
    record = {"center": [100, 100], "scale": [60, 200], "joints": np.zeros((17, 3))}
    center, scale, rot, flip = t.crop_params(record, 640)
    # h * 1.135 = 227 decides; w grows to the 3:4 ratio
    np.testing.assert_allclose(scale, [227 * 0.75, 227], rtol=1e-6)
    assert rot == 0 and not flip
