"""Bad input is skipped at indexing time with counted reasons, converted, or substituted: never a crash."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from rsn_lightning.data.coco import CocoKeypointDataset
from rsn_lightning.data.images import probe_image, read_image
from rsn_lightning.data.mpii import MPIIDataset
from rsn_lightning.data.transforms import TopDownTransform
from rsn_lightning.keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS

INPUT = (96, 128)


def _kps(n=17, x=60.0, y=50.0):
    return [v for i in range(n) for v in (x + 2 * i, y + 3 * i, 2)]


@pytest.fixture
def bad_root(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    color = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(img_dir / "good.jpg"), color)
    cv2.imwrite(str(img_dir / "gray.png"), color[..., 0])
    cv2.imwrite(str(img_dir / "rgba.png"), np.dstack([color, np.full((120, 160), 200, np.uint8)]))
    cv2.imwrite(str(img_dir / "deep.png"), color.astype(np.uint16) * 257)
    data = (img_dir / "good.jpg").read_bytes()
    (img_dir / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (img_dir / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    (img_dir / "empty.jpg").write_bytes(b"")
    names = ["good.jpg", "gray.png", "rgba.png", "deep.png", "truncated.jpg", "garbage.jpg", "empty.jpg",
             "missing.jpg"]
    images = [{"id": i + 1, "file_name": n, "width": 160, "height": 120} for i, n in enumerate(names)]
    box = [40, 30, 60, 80]
    anns = []

    def add(image_id, **kw):
        ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": box,
               "area": 4800.0, "num_keypoints": 17, "keypoints": _kps()}
        ann.update(kw)
        anns.append(ann)

    for i in range(1, 9):  # one good person per image; the last four images are unusable
        add(i)
    add(1, bbox=[40, 30, 0, 80])  # zero width
    add(1, bbox=[40, 30, -5, 80])  # negative width
    add(1, bbox=[500, 400, 50, 50])  # outside the 160x120 image
    add(1, keypoints=[0] * 51, num_keypoints=0)  # nothing labelled
    add(1, keypoints=_kps(16))  # wrong count
    nan_kps = _kps()
    nan_kps[0] = float("nan")
    nan_kps[3] = -4.0
    add(1, keypoints=nan_kps)  # two bad joints: kept, those joints unlabelled
    add(99)  # image not in the file
    add(1, iscrowd=1)
    ann_file = tmp_path / "ann.json"
    # Python's json writes NaN as the bare literal, which is what a buggy exporter produces
    ann_file.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [COCO_KEYPOINTS.coco_category()]}))
    return tmp_path, ann_file, img_dir


def test_images_are_probed_from_headers_and_converted(bad_root):
    _, _, img_dir = bad_root
    assert probe_image(img_dir / "good.jpg").ok and probe_image(img_dir / "good.jpg").width == 160
    assert probe_image(img_dir / "deep.png").height == 120
    assert probe_image(img_dir / "truncated.jpg").reason == "truncated image"
    assert probe_image(img_dir / "garbage.jpg").reason == "unreadable image"
    assert probe_image(img_dir / "empty.jpg").reason == "empty image file"
    assert probe_image(img_dir / "missing.jpg").reason == "missing image"
    good = read_image(img_dir / "good.jpg")
    for name in ("gray.png", "rgba.png", "deep.png"):
        img = read_image(img_dir / name)
        assert img.dtype == np.uint8 and img.shape == (120, 160, 3), name
    np.testing.assert_array_equal(read_image(img_dir / "rgba.png"), cv2.imread(str(img_dir / "rgba.png")))
    deep = read_image(img_dir / "deep.png").astype(int)
    assert np.abs(deep - cv2.imread(str(img_dir / "rgba.png"))).max() <= 1
    gray = cv2.imread(str(img_dir / "gray.png"), cv2.IMREAD_UNCHANGED)
    assert gray.ndim == 2
    np.testing.assert_array_equal(read_image(img_dir / "gray.png"), np.dstack([gray] * 3))
    assert good.shape == (120, 160, 3)
    assert read_image(img_dir / "garbage.jpg") is None and read_image(img_dir / "missing.jpg") is None


def test_unusable_annotations_are_skipped_counted_and_reported_once(bad_root, caplog):
    _, ann_file, img_dir = bad_root
    t = TopDownTransform(INPUT, COCO_KEYPOINTS, train=True)
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.coco"):
        ds = CocoKeypointDataset(ann_file, img_dir, t)
    counts = ds.skipped.counts
    assert counts["truncated image"] == 1 and counts["unreadable image"] == 1
    assert counts["empty image file"] == 1 and counts["missing image"] == 1
    assert counts["box of zero, negative or invalid size"] == 2
    assert counts["box outside the image"] == 1
    assert counts["no labelled joints"] == 1
    assert counts["wrong number of keypoints (expected 17)"] == 1
    # joints are counted apart from skipped annotations
    assert "joint with NaN or negative coordinates (unlabelled)" not in counts
    assert ds.skipped.joint_counts == {"NaN or negative coordinates": 2}
    assert ds.skipped.total == 11
    assert counts["annotation for an image not in the annotation file"] == 1
    assert counts["crowd annotation"] == 1
    # the good, gray, rgba, 16-bit persons and the one with two bad joints
    assert len(ds) == 5
    nan_person = [r for r in ds.records if r["joints"][0, 2] == 0]
    assert len(nan_person) == 1 and nan_person[0]["joints"][1, 2] == 0 and nan_person[0]["joints"][2, 2] == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len([r for r in warnings if "truncated image" in r.getMessage()]) == 1
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 128, 96) and np.isfinite(s["heatmaps"]).all()


def test_image_failing_after_indexing_is_substituted_and_counted(bad_root, caplog):
    _, ann_file, img_dir = bad_root
    ds = CocoKeypointDataset(ann_file, img_dir, TopDownTransform(INPUT, COCO_KEYPOINTS, train=True))
    (img_dir / "good.jpg").write_bytes(b"\xff\xd8 corrupted later \xff\xd9")
    idx = [r["image_path"].endswith("good.jpg") for r in ds.records].index(True)
    with caplog.at_level(logging.WARNING, logger="rsn_lightning.data.topdown"):
        a, b = ds[idx], ds[idx]
    assert a["target_weight"].sum() == 0 and a["heatmaps"].max() == 0
    assert a["image"].shape == (3, 128, 96) and b["index"] == idx
    assert list(ds.load_failures.values()) == [2]
    assert len([r for r in caplog.records if "cannot use" in r.getMessage()]) == 1


def test_missing_or_malformed_files_are_clear_errors(bad_root, tmp_path):
    _, ann_file, img_dir = bad_root
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoKeypointDataset(tmp_path / "nope.json", img_dir)
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json"):
        CocoKeypointDataset(broken, img_dir)
    not_coco = tmp_path / "list.json"
    not_coco.write_text("[]")
    with pytest.raises(ValueError, match="list.json"):
        CocoKeypointDataset(not_coco, img_dir)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        CocoKeypointDataset(ann_file, tmp_path / "no_such_dir")


def test_mpii_bad_entries_are_skipped(tmp_path, mpii_mini_dir):
    entries = json.loads((mpii_mini_dir / "test_mpii.json").read_text())
    bad = [dict(entries[0], scale=0.0), dict(entries[0], joints=entries[0]["joints"][:15]),
           dict(entries[0], image="missing.jpg"), dict(entries[0], joints_vis=[0] * 16),
           dict(entries[0], center=[float("nan"), 3.0])]
    ann = tmp_path / "mpii.json"
    ann.write_text(json.dumps(entries + bad))
    ds = MPIIDataset(ann, mpii_mini_dir, TopDownTransform((256, 256), MPII_KEYPOINTS, train=False))
    assert len(ds) == len(entries)
    c = ds.skipped.counts
    assert c["box of zero, negative or invalid size"] == 2
    assert c["wrong number of keypoints (expected 16)"] == 1
    assert c["missing image"] == 1 and c["no labelled joints"] == 1
