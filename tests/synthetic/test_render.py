"""The drawn scene and its annotation agree: the image is the written one, keypoints lie on their body
parts, visibility follows the image bounds, people are truncated, left and right differ in colour."""

from __future__ import annotations

import cv2
import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.synthetic import render_sample
from rsn_lightning.synthetic.people import OCCLUDER, PARTS

from .files import SEED, SIZE, keypoints_of, load_coco

# which drawn body part each joint may be seen on, written out here from the body model (joint centres
# of limbs: an elbow is where upper arm and forearm meet), independently of the renderer's own table
ALLOWED_PARTS = {
    "nose": {"nose"}, "left_eye": {"left_eye"}, "right_eye": {"right_eye"},
    "left_ear": {"left_ear"}, "right_ear": {"right_ear"},
    "left_shoulder": {"left_upper_arm"}, "right_shoulder": {"right_upper_arm"},
    "left_elbow": {"left_upper_arm", "left_forearm"}, "right_elbow": {"right_upper_arm", "right_forearm"},
    "left_wrist": {"left_forearm"}, "right_wrist": {"right_forearm"},
    "left_hip": {"left_thigh"}, "right_hip": {"right_thigh"},
    "left_knee": {"left_thigh", "left_shin"}, "right_knee": {"right_thigh", "right_shin"},
    "left_ankle": {"left_shin"}, "right_ankle": {"right_shin"},
}


def _rounded(x, y) -> tuple[int, int]:
    return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))


def _samples(root, n=80):
    """Val images re-rendered (image, label map, persons) next to their JSON annotations."""
    coco = load_coco(root / "annotations/person_keypoints_val.json")
    for index, img_id in enumerate(sorted(coco.getImgIds())[:n]):
        sample = render_sample(SEED, "val", index, SIZE)
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id)), key=lambda a: a["id"])
        file = root / "images/val" / coco.loadImgs(img_id)[0]["file_name"]
        yield sample, anns, cv2.imread(str(file))


def _who(sample, x, y):
    slot, part = sample.part_at(x, y)
    return slot, (PARTS[part] if slot >= 0 else ("occluder" if part == OCCLUDER else "background"))


def test_rendered_sample_is_the_written_image(root):
    for sample, anns, decoded in _samples(root, 10):
        # equal up to JPEG loss (which mostly drops the fine grain noise, hence the blur)
        smooth = [cv2.GaussianBlur(im, (5, 5), 1.5).astype(int) for im in (decoded, sample.image)]
        assert np.abs(smooth[0] - smooth[1]).mean() < 2
        assert len(anns) == len(sample.persons)
        for ann, person in zip(anns, sample.persons):
            mask = sample.person_mask(person.slot)
            assert ann["area"] == mask.sum()
            ys, xs = np.nonzero(mask)
            assert person.area <= person.full_area
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_keypoints_lie_on_their_body_parts(root):
    seen = covered_by_other = covered_by_self = covered_by_object = 0
    for sample, anns, _ in _samples(root):
        for ann, person in zip(anns, sample.persons):
            mask = sample.person_mask(person.slot)
            for name, (x, y, v) in zip(COCO_KEYPOINTS.names, keypoints_of(ann)):
                if v == 0:
                    continue
                slot, part = _who(sample, x, y)
                xi, yi = _rounded(x, y)
                if v == 2:
                    assert mask[yi, xi], (name, x, y)
                    assert slot == person.slot and part in ALLOWED_PARTS[name], (name, slot, part)
                    seen += 1
                else:  # labelled 1: something else is drawn over the joint
                    assert part != "background", (name, x, y)
                    assert not (slot == person.slot and part in ALLOWED_PARTS[name]), (name, part)
                    if slot == -1:
                        covered_by_object += 1
                    elif slot == person.slot:
                        covered_by_self += 1
                    else:
                        covered_by_other += 1
    # the set must really exercise self-occlusion and mutual occlusion
    counts = (seen, covered_by_self, covered_by_other, covered_by_object)
    assert seen > 1000 and covered_by_self > 100 and covered_by_other > 15 and covered_by_object > 0, counts


def test_visibility_matches_image_bounds(root):
    for sample, anns, _ in _samples(root):
        H, W = sample.labels.shape
        for ann, person in zip(anns, sample.persons):
            kps = keypoints_of(ann)
            for k, (x, y) in enumerate(person.joints):
                # labelled only inside the image itself (the loader unlabels negative coordinates)
                inside = 0 <= x <= W - 1 and 0 <= y <= H - 1
                if not inside:
                    assert kps[k, 2] == 0
                elif _who(sample, x, y)[1] != "background":
                    assert kps[k, 2] > 0
                    np.testing.assert_allclose(kps[k, :2], (x, y), atol=0.01)


def test_truncated_people_exist(root):
    coco = load_coco(root / "annotations/person_keypoints_train.json")
    outside = 0
    for ann in coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        touches_border = x == 0 or y == 0 or x + w == 384 or y + h == 288
        outside += touches_border and (keypoints_of(ann)[:, 2] == 0).any()
    assert outside >= 10


def test_left_and_right_are_told_apart_by_colour(root):
    """Left limbs are warm (red > blue), right limbs cool (blue > red), read from the JPEG."""
    right = {"left": [], "right": []}
    for _, anns, decoded in _samples(root):
        for ann in anns:
            kps = keypoints_of(ann)
            for side in ("left", "right"):
                for joint in ("wrist", "ankle"):  # the middle of one uniformly coloured part
                    x, y, v = kps[COCO_KEYPOINTS.names.index(f"{side}_{joint}")]
                    if v == 2:
                        b, _, r = decoded[_rounded(x, y)[::-1]].astype(int)
                        right[side].append(r > b if side == "left" else b > r)
    assert len(right["left"]) > 100 and len(right["right"]) > 100
    assert np.mean(right["left"]) > 0.9 and np.mean(right["right"]) > 0.9
