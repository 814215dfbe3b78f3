"""The synthetic COCO-format keypoint dataset: format, annotation truth, determinism, detections."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rsn_lightning.cli.synth import main
from rsn_lightning.data import synthetic
from rsn_lightning.data.synthetic import generate, is_generated, render_sample
from rsn_lightning.data.synthetic_render import OCCLUDER, PARTS
from rsn_lightning.keypoints import COCO_KEYPOINTS

SEED = 3
SIZE = (384, 288)

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


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, num_train=100, num_val=80, seed=SEED, image_size=SIZE)
    return root


def _load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _keypoints(ann) -> np.ndarray:
    return np.asarray(ann["keypoints"], float).reshape(-1, 3)


def _rounded(x, y) -> tuple[int, int]:
    return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- format


def test_layout_and_coco_format(root):
    assert is_generated(root)
    assert is_generated(root, num_train=100, num_val=80, seed=SEED, image_size=SIZE)
    assert not is_generated(root, seed=SEED + 1)
    for split, n in (("train", 100), ("val", 80)):
        coco = _load(root / "annotations" / f"person_keypoints_{split}.json")
        assert len(coco.getImgIds()) == n
        cat = coco.loadCats(1)[0]
        assert cat["keypoints"] == list(COCO_KEYPOINTS.names)
        assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO_KEYPOINTS.skeleton]
        for img in coco.loadImgs(coco.getImgIds()):
            path = root / "images" / split / img["file_name"]
            decoded = cv2.imread(str(path))
            assert decoded is not None and decoded.shape == (img["height"], img["width"], 3) == (288, 384, 3)
        ids = [a["id"] for a in coco.dataset["annotations"]]
        assert len(set(ids)) == len(ids)
        for ann in coco.dataset["annotations"]:
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            kps = _keypoints(ann)
            assert kps.shape == (17, 3)
            assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
            assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
            assert np.all(kps[kps[:, 2] == 0] == 0)  # COCO writes unlabelled joints as 0,0,0
            x, y, w, h = ann["bbox"]
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 384 and y + h <= 288
            assert 0 < ann["area"] <= w * h
    train_ids = set(_load(root / "annotations/person_keypoints_train.json").getImgIds())
    val_ids = set(_load(root / "annotations/person_keypoints_val.json").getImgIds())
    assert not train_ids & val_ids


@pytest.mark.parametrize("split", ["train", "val"])
def test_ground_truth_fed_back_scores_ap_1(root, split):
    gt = _load(root / "annotations" / f"person_keypoints_{split}.json")
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt.dataset["annotations"] if a["num_keypoints"] > 0]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP
    assert ev.stats[3] == pytest.approx(1.0) and ev.stats[4] == pytest.approx(1.0)  # AP medium, large


def test_area_covers_coco_medium_and_large(root):
    anns = [a for split in ("train", "val")
            for a in _load(root / f"annotations/person_keypoints_{split}.json").dataset["annotations"]]
    areas = np.array([a["area"] for a in anns])
    assert len(areas) > 300
    medium = ((areas >= 32**2) & (areas < 96**2)).mean()
    large = (areas >= 96**2).mean()
    assert medium >= 0.2 and large >= 0.2, (medium, large)
    counts = np.unique([a["image_id"] for a in _load(root / "annotations/person_keypoints_train.json")
                        .dataset["annotations"]], return_counts=True)[1]
    assert counts.min() >= 1 and counts.max() <= 4 and (counts >= 3).any()


# ---------------------------------------------------------------------------------------------- truth


def _samples(root, n=80):
    """Val images re-rendered (image, label map, persons) next to their JSON annotations."""
    coco = _load(root / "annotations/person_keypoints_val.json")
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
            for name, (x, y, v) in zip(COCO_KEYPOINTS.names, _keypoints(ann)):
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
            kps = _keypoints(ann)
            for k, (x, y) in enumerate(person.joints):
                # labelled only inside the image itself (the loader unlabels negative coordinates)
                inside = 0 <= x <= W - 1 and 0 <= y <= H - 1
                if not inside:
                    assert kps[k, 2] == 0
                elif _who(sample, x, y)[1] != "background":
                    assert kps[k, 2] > 0
                    np.testing.assert_allclose(kps[k, :2], (x, y), atol=0.01)


def test_truncated_people_exist(root):
    coco = _load(root / "annotations/person_keypoints_train.json")
    outside = 0
    for ann in coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        touches_border = x == 0 or y == 0 or x + w == 384 or y + h == 288
        outside += touches_border and (_keypoints(ann)[:, 2] == 0).any()
    assert outside >= 10


def test_left_and_right_are_told_apart_by_colour(root):
    """Left limbs are warm (red > blue), right limbs cool (blue > red), read from the JPEG."""
    right = {"left": [], "right": []}
    for _, anns, decoded in _samples(root):
        for ann in anns:
            kps = _keypoints(ann)
            for side in ("left", "right"):
                for joint in ("wrist", "ankle"):  # the middle of one uniformly coloured part
                    x, y, v = kps[COCO_KEYPOINTS.names.index(f"{side}_{joint}")]
                    if v == 2:
                        b, _, r = decoded[_rounded(x, y)[::-1]].astype(int)
                        right[side].append(r > b if side == "left" else b > r)
    assert len(right["left"]) > 100 and len(right["right"]) > 100
    assert np.mean(right["left"]) > 0.9 and np.mean(right["right"]) > 0.9


# ---------------------------------------------------------------------------------------------- detections


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_detections_realistic(root):
    gt = _load(root / "annotations/person_keypoints_val.json")
    dets = json.loads((root / "annotations/person_detections_val.json").read_text())
    assert {d["image_id"] for d in dets} <= set(gt.getImgIds())
    assert all(d["category_id"] == 1 and 0 < d["score"] <= 1 and len(d["bbox"]) == 4 for d in dets)
    matched_iou, matched_score, fp_score, missed, n_gt = [], [], [], 0, 0
    for img_id in gt.getImgIds():
        boxes = [a["bbox"] for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id))]
        n_gt += len(boxes)
        used = set()
        for d in sorted((d for d in dets if d["image_id"] == img_id), key=lambda d: -d["score"]):
            ious = [(_iou(d["bbox"], b), i) for i, b in enumerate(boxes) if i not in used]
            best = max(ious, default=(0.0, -1))
            if best[0] >= 0.5:
                used.add(best[1])
                matched_iou.append(best[0])
                matched_score.append(d["score"])
            else:
                fp_score.append(d["score"])
        missed += len(boxes) - len(used)
    matched_iou = np.array(matched_iou)
    assert 1 <= missed <= 0.08 * n_gt, (missed, n_gt)
    assert 0.1 <= len(fp_score) / len(gt.getImgIds()) <= 0.7
    assert (matched_iou > 0.7).mean() > 0.9 and np.median(matched_iou) > 0.8
    assert np.mean(matched_score) > 0.8 > np.mean(fp_score)


def test_detections_allow_high_ap(root):
    """A perfect pose model run on the detected boxes (the GT pose of the matching person) scores high."""
    gt = _load(root / "annotations/person_keypoints_val.json")
    dets = json.loads((root / "annotations/person_detections_val.json").read_text())
    rng = np.random.default_rng(0)
    results = []
    for d in dets:
        anns = gt.loadAnns(gt.getAnnIds(imgIds=d["image_id"]))
        best = max(anns, key=lambda a: _iou(d["bbox"], a["bbox"]), default=None)
        if best is not None and _iou(d["bbox"], best["bbox"]) >= 0.5:
            kps = _keypoints(best)
        else:  # a false positive still gets a pose: spread over its box
            x, y, w, h = d["bbox"]
            kps = np.stack([x + rng.random(17) * w, y + rng.random(17) * h, np.ones(17)], 1)
        results.append({"image_id": d["image_id"], "category_id": 1, "score": d["score"],
                        "keypoints": kps.ravel().tolist()})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.85 < ev.stats[0] < 1.0  # misses cost something, but a good model can score well


# ---------------------------------------------------------------------------------------------- files


def test_deterministic_bytes_independent_of_workers(tmp_path, monkeypatch):
    # small jobs normally run in-process; force the worker pool so it is what gets compared
    monkeypatch.setattr(synthetic, "_POOL_MIN_IMAGES", 1)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, num_train=10, num_val=6, seed=7, image_size=(160, 128), workers=1)
    generate(b, num_train=10, num_val=6, seed=7, image_size=(160, 128), workers=2)
    generate(c, num_train=10, num_val=6, seed=8, image_size=(160, 128), workers=2)
    ha, hb, hc = _tree_hashes(a), _tree_hashes(b), _tree_hashes(c)
    assert len(ha) == 10 + 6 + 4  # images, 3 annotation files, the marker
    assert ha == hb
    differing = [k for k in ha if ha[k] != hc.get(k)]
    assert len(differing) >= 16 + 3  # every image and every annotation file


def test_failing_worker_raises_instead_of_hanging(tmp_path):
    missing = tmp_path / "not_created"
    tasks = [(str(missing), "val", i, 0, (128, 96), 90, 2) for i in range(4)]
    with pytest.raises(RuntimeError, match="worker failed"):
        synthetic._run_workers(tasks, 2, {"train": ([], [], []), "val": ([], [], [])}, None)


def test_reuse_regenerate_and_parameter_clash(tmp_path):
    root = tmp_path / "r"
    first = generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))
    assert not first["reused"] and first["num_train"] == 3 and first["num_val"] == 2
    assert first["num_val_persons"] == len(json.loads(first["val_annotations"].read_text())["annotations"])
    hashes = _tree_hashes(root)
    again = generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))
    assert again["reused"] and again["num_val_persons"] == first["num_val_persons"]

    with pytest.raises(ValueError, match="other parameters"):
        generate(root, num_train=4, num_val=2, seed=1, image_size=(128, 96))
    assert _tree_hashes(root) == hashes

    # a run cut short leaves no marker: not generated, and the next call redoes it identically
    (root / "rsn_synthetic.json").unlink()
    (root / "images/train/000000000002.jpg").write_bytes(b"truncated")
    assert not is_generated(root)
    assert not generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))["reused"]
    assert _tree_hashes(root) == hashes

    smaller = generate(root, num_train=2, num_val=2, seed=1, image_size=(128, 96), overwrite=True)
    assert not smaller["reused"] and len(list((root / "images/train").iterdir())) == 2


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_train": 0}, "num_train"),
        ({"num_val": -3}, "num_val"),
        ({"num_train": 2.5}, "num_train"),
        ({"image_size": (-384, 288)}, "image_size"),
        ({"image_size": (64, 48)}, "image_size"),
        ({"image_size": (384,)}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, name):
    root = tmp_path / "out"
    args = {"num_train": 2, "num_val": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        generate(root, **args)
    assert not root.exists()


def test_unwritable_root_raises_oserror(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="a_file"):
        generate(blocker / "sub", num_train=2, num_val=2)


def test_cli_writes_and_reports(tmp_path, capsys):
    root = tmp_path / "cli"
    args = [str(root), "--num-train", "3", "--num-val", "2", "--seed", "5", "--image-size", "160", "120"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "person_keypoints_train.json" in out and "person_detections_val.json" in out
    assert is_generated(root, num_train=3, num_val=2, seed=5, image_size=(160, 120))
    assert cv2.imread(str(next((root / "images/val").glob("*.jpg")))).shape == (120, 160, 3)
    assert main([str(tmp_path / "bad"), "--num-train", "0"]) == 2
    assert "num_train" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_session_fixture_root(synthetic_root):
    assert is_generated(synthetic_root, num_train=24, num_val=8, seed=0)


@pytest.mark.slow
def test_5000_images_under_a_minute(tmp_path):
    t0 = time.perf_counter()
    out = generate(tmp_path / "big", num_train=4500, num_val=500, seed=0)
    elapsed = time.perf_counter() - t0
    assert out["num_train"] + out["num_val"] == 5000
    assert elapsed < 60, elapsed
