"""data.index_cache: a dataset's checked records are built once per annotation file version and read back by
the next process, with the same skip report; a changed annotation file is indexed again."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

import numpy as np
import pytest

from rsn_lightning.data.coco import CocoKeypointDataset
from rsn_lightning.data.index_cache import cache_dir
from rsn_lightning.data.mpii import MPIIDataset
from rsn_lightning.data.transforms import TopDownTransform
from rsn_lightning.keypoints import COCO_KEYPOINTS


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path):
    """A copy of the session's synthetic set whose files a test may change, its annotation files dated a
    minute back (a file written in the last 2 s is indexed but not cached: index_cache.RACY_SECONDS)."""
    root = shutil.copytree(synthetic_root, tmp_path / "synthetic")
    past = time.time() - 60
    for f in (root / "annotations").iterdir():
        os.utime(f, (past, past))
    return root


def _train(root, **kw) -> CocoKeypointDataset:
    return CocoKeypointDataset(root / "annotations" / "person_keypoints_train.json", root / "images" / "train",
                               TopDownTransform((48, 64), COCO_KEYPOINTS, train=False), name="train", **kw)


def _same_records(a, b) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_second_build_reads_the_index_and_a_touched_annotation_file_is_indexed_again(synthetic_copy, caplog):
    ann = synthetic_copy / "annotations" / "person_keypoints_train.json"
    with caplog.at_level(logging.INFO):
        first = _train(synthetic_copy)
    assert "train: indexed" in caplog.text and len(list(cache_dir().glob("*.pkl"))) == 1
    first_image = first.records[0]["image_path"]
    people_on_it = sum(r["image_path"] == first_image for r in first.records)
    # an image gone after indexing: the index is read, so the images are not probed and nobody notices
    os.rename(first_image, first_image + ".gone")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = _train(synthetic_copy)
    assert "train: read the index of" in caplog.text and "missing image" not in caplog.text
    assert _same_records(first.records, second.records)
    # the annotation file changes (only its time here): indexed again, the image is probed and skipped
    later = time.time() - 30
    os.utime(ann, (later, later))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        third = _train(synthetic_copy)
    assert "train: indexed" in caplog.text
    assert f"train: skipped {people_on_it}: missing image (e.g. {first_image}" in caplog.text
    assert len(third) == len(first) - people_on_it
    assert len(list(cache_dir().glob("*.pkl"))) == 1  # the entry was replaced, not added to


def test_skip_counts_and_warnings_are_reported_when_read_from_the_index(synthetic_copy, caplog):
    # a detection file with unusable entries: the counts come back with the index
    dets_file = synthetic_copy / "annotations" / "person_detections_val.json"
    dets = json.loads(dets_file.read_text())
    dets += [{"image_id": dets[0]["image_id"], "category_id": 1, "bbox": [0, 0, 0, 0], "score": 0.9},
             {"image_id": 999999, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9}]
    dets_file.write_text(json.dumps(dets))
    past = time.time() - 60
    os.utime(dets_file, (past, past))

    def build():
        return CocoKeypointDataset(synthetic_copy / "annotations" / "person_keypoints_val.json",
                                   synthetic_copy / "images" / "val", None, COCO_KEYPOINTS, det_file=dets_file,
                                   clip_boxes=True, name="val dets")

    reports = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            ds = build()
        reports.append([r.getMessage() for r in caplog.records if "skipped" in r.getMessage()])
        assert ds.skipped.total == 2
    assert "val dets: read the index of" in caplog.text
    assert reports[0] == reports[1] and any("skipped 1: box of zero" in m for m in reports[1])
    assert any("skipped 1: detection for an image not in the annotation file" in m for m in reports[1])
    # other settings are another entry: the threshold changes which detections are kept
    CocoKeypointDataset(synthetic_copy / "annotations" / "person_keypoints_val.json", synthetic_copy / "images" / "val",
                        None, COCO_KEYPOINTS, det_file=dets_file, det_score_threshold=0.95, name="val dets")
    assert len(list(cache_dir().glob("*.pkl"))) == 2


def test_a_just_written_annotation_file_is_not_cached(synthetic_copy, caplog):
    ann = synthetic_copy / "annotations" / "person_keypoints_train.json"
    ann.write_text(ann.read_text())  # now: a rewrite within the timestamp granularity could go unseen
    first = _train(synthetic_copy)
    assert not list(cache_dir().glob("*.pkl"))
    assert len(_train(synthetic_copy)) == len(first)


def test_mpii_index_with_head_boxes_applied_after(mpii_mini_dir, tmp_path, caplog):
    # a copy dated a minute back, so that its index is cached
    ann = tmp_path / "test_mpii.json"
    shutil.copy(mpii_mini_dir / "test_mpii.json", ann)
    past = time.time() - 60
    os.utime(ann, (past, past))
    n = len(json.loads(ann.read_text()))
    boxes = np.tile(np.array([[10.0, 10.0, 40.0, 50.0]]), (n, 1))
    np.save(tmp_path / "heads.npy", boxes)
    first = MPIIDataset(ann, mpii_mini_dir)
    with caplog.at_level(logging.INFO):
        second = MPIIDataset(ann, mpii_mini_dir, head_boxes=tmp_path / "heads.npy")
    assert "read the index of" in caplog.text and len(second) == len(first) > 0
    assert second.head_sizes == pytest.approx(0.6 * np.hypot(30.0, 40.0))
    assert not np.allclose(first.head_sizes, second.head_sizes)
