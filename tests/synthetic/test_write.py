"""Writing of the synthetic root: COCO format, areas, reuse and regeneration, argument checks, rsn-synth."""

from __future__ import annotations

import contextlib
import io
import json
import time

import cv2
import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from rsn_lightning.cli.synth import main
from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.synthetic import generate, is_generated

from .files import SEED, SIZE, keypoints_of, load_coco, tree_hashes


def test_layout_and_coco_format(root):
    assert is_generated(root)
    assert is_generated(root, num_train=100, num_val=80, seed=SEED, image_size=SIZE)
    assert not is_generated(root, seed=SEED + 1)
    for split, n in (("train", 100), ("val", 80)):
        coco = load_coco(root / "annotations" / f"person_keypoints_{split}.json")
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
            kps = keypoints_of(ann)
            assert kps.shape == (17, 3)
            assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
            assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
            assert np.all(kps[kps[:, 2] == 0] == 0)  # COCO writes unlabelled joints as 0,0,0
            x, y, w, h = ann["bbox"]
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 384 and y + h <= 288
            assert 0 < ann["area"] <= w * h
    train_ids = set(load_coco(root / "annotations/person_keypoints_train.json").getImgIds())
    val_ids = set(load_coco(root / "annotations/person_keypoints_val.json").getImgIds())
    assert not train_ids & val_ids


@pytest.mark.parametrize("split", ["train", "val"])
def test_ground_truth_fed_back_scores_ap_1(root, split):
    gt = load_coco(root / "annotations" / f"person_keypoints_{split}.json")
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
            for a in load_coco(root / f"annotations/person_keypoints_{split}.json").dataset["annotations"]]
    areas = np.array([a["area"] for a in anns])
    assert len(areas) > 300
    medium = ((areas >= 32**2) & (areas < 96**2)).mean()
    large = (areas >= 96**2).mean()
    assert medium >= 0.2 and large >= 0.2, (medium, large)
    counts = np.unique([a["image_id"] for a in load_coco(root / "annotations/person_keypoints_train.json")
                        .dataset["annotations"]], return_counts=True)[1]
    assert counts.min() >= 1 and counts.max() <= 4 and (counts >= 3).any()


def test_reuse_regenerate_and_parameter_clash(tmp_path):
    root = tmp_path / "r"
    first = generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))
    assert not first["reused"] and first["num_train"] == 3 and first["num_val"] == 2
    assert first["num_val_persons"] == len(json.loads(first["val_annotations"].read_text())["annotations"])
    hashes = tree_hashes(root)
    again = generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))
    assert again["reused"] and again["num_val_persons"] == first["num_val_persons"]

    with pytest.raises(ValueError, match="other parameters"):
        generate(root, num_train=4, num_val=2, seed=1, image_size=(128, 96))
    assert tree_hashes(root) == hashes

    # a run cut short leaves no marker: not generated, and the next call redoes it identically
    (root / "rsn_synthetic.json").unlink()
    (root / "images/train/000000000002.jpg").write_bytes(b"truncated")
    assert not is_generated(root)
    assert not generate(root, num_train=3, num_val=2, seed=1, image_size=(128, 96))["reused"]
    assert tree_hashes(root) == hashes

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
