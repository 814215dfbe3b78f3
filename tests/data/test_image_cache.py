"""data.image_cache: training sets small enough are decoded into memory once; samples are unchanged."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil

import cv2
import numpy as np
import pytest
import torch

from rsn_lightning.data.coco import CocoKeypointDataset
from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.data.image_cache import GIB, cache_images
from rsn_lightning.data.transforms import TopDownTransform
from rsn_lightning.keypoints import COCO_KEYPOINTS


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path):
    """A copy of the session's synthetic set whose images a test may delete."""
    return shutil.copytree(synthetic_root, tmp_path / "synthetic")


def _datamodule(root, **kw) -> PoseDataModule:
    kw = {"batch_size": 4, "num_workers": 0, "input_size": (48, 64), **kw}
    return PoseDataModule(kind="coco", root=str(root), layout="synthetic", val_boxes="detections", **kw)


def _same_sample(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_training_samples_come_from_memory_and_equal_samples_from_disk(synthetic_copy, caplog):
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.image_cache"):
        cached = _datamodule(synthetic_copy)
        cached.setup("fit")
    from_disk = _datamodule(synthetic_copy, image_cache_gib=0)
    from_disk.setup("fit")
    train = cached.train_dataset
    images = {r["image_path"] for r in train.records}
    assert len(train.decoded) == len(images) == 24  # each image once, however many people it holds
    assert cached.val_dataset.decoded is not None and from_disk.train_dataset.decoded is None
    assert "coco train: decoded its 24 images into memory once" in caplog.text
    # the transform writes into no image: a held image stays read-only and unchanged
    held, reason = train.decoded.get(train.records[0]["image_path"])
    assert reason == "" and not held.flags.writeable
    before = held.copy()
    samples = {i: train[(i, 1000 + i)] for i in range(len(train))}
    assert np.array_equal(held, before)
    for i, sample in samples.items():
        assert _same_sample(sample, from_disk.train_dataset[(i, 1000 + i)]), i
    # with the files gone every sample still loads, pixel for pixel as before
    shutil.rmtree(synthetic_copy / "images" / "train")
    for i in range(len(train)):
        assert _same_sample(train[(i, 1000 + i)], samples[i])
    assert not train.load_failures and sum(s["target_weight"].sum() for s in samples.values()) > 0


def test_validation_samples_from_memory_equal_samples_from_disk(synthetic_root):
    cached, from_disk = _datamodule(synthetic_root), _datamodule(synthetic_root, image_cache_gib=0)
    cached.setup("fit")
    from_disk.setup("fit")
    a, b = cached.val_dataset, from_disk.val_dataset
    assert a.decoded is not None and b.decoded is None and len(a) > 0
    for i in range(len(a)):
        assert _same_sample(a[i], b[i]), i


def test_over_budget_sets_and_one_pass_evaluation_read_from_disk(synthetic_root, caplog):
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.image_cache"):
        small = _datamodule(synthetic_root, image_cache_gib=1e-4)
        small.setup("fit")
    assert small.train_dataset.decoded is None
    assert "coco train: decoding images from disk: its 24 images would take 0.0 GiB decoded, more than " \
           "data.image_cache_gib=0.0001" in caplog.text
    evaluation = _datamodule(synthetic_root)
    evaluation.setup("validate")
    assert evaluation.val_dataset.decoded is None and evaluation.train_dataset is None


def test_forked_loader_workers_read_the_decoded_images(synthetic_copy):
    torch.manual_seed(0)
    dm = _datamodule(synthetic_copy, num_workers=2, persistent_workers=False)
    dm.setup("fit")
    assert dm.train_dataset.decoded is not None
    torch.manual_seed(0)
    reference = _datamodule(synthetic_copy, num_workers=0, image_cache_gib=0)
    reference.setup("fit")
    expected = [b["image"] for b in reference.train_dataloader()]
    shutil.rmtree(synthetic_copy / "images" / "train")
    got = [b for b in dm.train_dataloader()]
    # every batch from memory (a failed load would zero its target weights) and the samples unchanged
    assert len(got) == len(expected) > 1
    assert all(b["target_weight"].sum() > 0 for b in got)
    assert all(torch.equal(b["image"], e) for b, e in zip(got, expected))


def test_spawned_workers_get_no_copies(synthetic_root, caplog):
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        with caplog.at_level(logging.INFO, logger="rsn_lightning.data.datamodule"):
            dm = _datamodule(synthetic_root, num_workers=2)
            dm.setup("fit")
    finally:
        multiprocessing.set_start_method(previous, force=True)
    assert dm.train_dataset.decoded is None and dm.val_dataset.decoded is None
    assert "loader workers started by 'spawn' would each get a copy" in caplog.text


def _mini_set(tmp_path, real_sizes: dict[str, tuple[int, int]]) -> tuple:
    """Images of the given real (height, width), one person each, in an annotation file that says 120x160."""
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in real_sizes.items():
        cv2.imwrite(str(img_dir / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    kps = [v for i in range(17) for v in (60.0 + 2 * i, 50.0 + 3 * i, 2)]
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps({
        "images": [{"id": i + 1, "file_name": n, "width": 160, "height": 120} for i, n in enumerate(real_sizes)],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": [40, 30, 60, 80],
                         "area": 4800.0, "keypoints": kps} for i in range(len(real_sizes))],
        "categories": [COCO_KEYPOINTS.coco_category()]}))
    return ann_file, img_dir


def test_image_failing_to_decode_is_handled_as_when_read_from_disk(tmp_path, caplog):
    ann_file, img_dir = _mini_set(tmp_path, {"good.jpg": (120, 160), "bad.jpg": (120, 160)})
    ds = CocoKeypointDataset(ann_file, img_dir, TopDownTransform((48, 64), COCO_KEYPOINTS, train=False))
    # passes the header check at indexing time, then its body is damaged
    (img_dir / "bad.jpg").write_bytes(b"\xff\xd8 corrupted later \xff\xd9")
    decoded = cache_images(ds, 1.0, "mini")
    assert decoded is not None and len(decoded) == 2
    image, reason = decoded.get(str(img_dir / "bad.jpg"))
    assert image is None and reason == "not an image OpenCV can decode"
    with caplog.at_level(logging.WARNING, logger="rsn_lightning.data.topdown"):
        good, bad = ds[0], ds[1]
    assert good["target_weight"].sum() > 0 and bad["target_weight"].sum() == 0
    assert list(ds.load_failures.values()) == [1] and "cannot use" in caplog.text


def test_images_larger_than_the_annotation_says_stop_at_the_budget(tmp_path, caplog):
    # with data.check_images off the sizes come from the annotation file (120x160 for both here)
    ann_file, img_dir = _mini_set(tmp_path, {"small.jpg": (120, 160), "large.jpg": (1200, 1600)})
    ds = CocoKeypointDataset(ann_file, img_dir, TopDownTransform((48, 64), COCO_KEYPOINTS, train=False),
                             check_images=False)
    assert len(ds) == 2
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.image_cache"):
        assert cache_images(ds, 0.001, "mini") is None  # 1 MiB: 2 x 57,600 bytes expected, 5.8 MB found
    assert ds.decoded is None and "more than the annotation file's sizes say" in caplog.text
    assert cache_images(ds, 0.01, "mini") is not None and ds.decoded is not None


def test_the_budget_is_the_nodes_shared_by_its_ranks_train_split_first(synthetic_root, caplog):
    import pytorch_lightning as pl

    # decoded, the 24 train images take 7.96 MB (0.0074 GiB) and the 8 val images 2.65 MB (0.0025 GiB)
    budget = 0.02
    single = _datamodule(synthetic_root, image_cache_gib=budget)
    single.setup("fit")
    assert single.processes_on_this_node() == 1 and single.image_cache_share_gib() == budget
    assert single.train_dataset.decoded is not None and single.val_dataset.decoded is not None
    # a real Trainer of 4 processes on this node (built, not launched): Lightning attaches it before setup
    four = _datamodule(synthetic_root, image_cache_gib=budget)
    four.trainer = pl.Trainer(accelerator="cpu", devices=4, strategy="ddp", logger=False,
                              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.image_cache"):
        four.setup("fit")
    assert four.processes_on_this_node() == 4 and four.image_cache_share_gib() == budget / 4
    # 0.005 GiB a process: the train split does not fit, the val split does
    assert four.train_dataset.decoded is None and four.val_dataset.decoded is not None
    assert "coco train: decoding images from disk: its 24 images would take 0.0 GiB decoded, more than 0.005 GiB " \
           "per process: data.image_cache_gib=0.02 on this node / 4 processes" in caplog.text


def test_the_val_split_gets_what_the_train_split_left(synthetic_root, caplog):
    # room for the train split's 0.00742 GiB and, after it, less than the val split's 0.0025 GiB
    dm = _datamodule(synthetic_root, image_cache_gib=0.009)
    with caplog.at_level(logging.INFO, logger="rsn_lightning.data.image_cache"):
        dm.setup("fit")
    assert dm.train_dataset.decoded is not None and dm.val_dataset.decoded is None
    assert dm.train_dataset.decoded.nbytes == 24 * 384 * 288 * 3 and 0.009 - 24 * 384 * 288 * 3 / GIB < 0.0025
    assert "coco val: decoding images from disk: its 8 images would take 0.0 GiB decoded, more than 0.00158 GiB " \
           "left of data.image_cache_gib=0.009 after the train split" in caplog.text
