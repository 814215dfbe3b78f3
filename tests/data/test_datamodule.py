"""PoseDataModule: set-up and one train / val batch on the real mini sets, config instantiation,
synthetic generation on first use, clear errors for wrong paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS

CONF = Path(__file__).resolve().parents[2] / "conf"
META = {"image_id": torch.int64, "index": torch.int64, "box_score": torch.float32, "area": torch.float32}


def check_batch(batch, n, k, w, h, targets=True):
    assert batch["image"].shape == (n, 3, h, w) and batch["image"].dtype == torch.float32
    if targets:
        assert batch["heatmaps"].shape == (n, 5, k, h // 4, w // 4)
        assert float(batch["heatmaps"].max()) == pytest.approx(255.0, abs=1e-2)
    else:
        assert "heatmaps" not in batch
    assert batch["target_weight"].shape == (n, k) and batch["joints"].shape == (n, k, 3)
    assert batch["center"].shape == (n, 2) and batch["scale"].shape == (n, 2)
    for key, dtype in META.items():
        assert batch[key].shape == (n,) and batch[key].dtype == dtype, key


def test_coco_mini_train_on_gt_and_val_on_detections(coco_mini_dir):
    ann = str(coco_mini_dir / "test_coco.json")
    dm = PoseDataModule(kind="coco", train_ann_file=ann, train_image_dir=str(coco_mini_dir), val_ann_file=ann,
                        val_image_dir=str(coco_mini_dir),
                        det_file=str(coco_mini_dir / "test_coco_det_AP_H_56.json"),
                        val_boxes="detections", det_score_threshold=0.5, batch_size=4, num_workers=0)
    assert dm.keypoint_spec is COCO_KEYPOINTS and dm.num_keypoints == 17 and dm.dataset_kind == "coco"
    dm.setup("fit")
    assert dm.val_ann_file == ann and dm.input_size == (192, 256)
    # 14 people, 2 of them without labelled joints
    assert len(dm.train_dataset) == 12
    train = next(iter(dm.train_dataloader()))
    check_batch(train, 4, 17, 192, 256)
    assert (train["box_score"] == 1).all()
    val = next(iter(dm.val_dataloader()))
    check_batch(val, 4, 17, 192, 256, targets=False)
    assert (val["box_score"] >= 0.5).all() and (val["area"] == 0).all()
    assert set(val["image_id"].tolist()) <= {785, 40083, 196141, 197388}
    assert val["index"].tolist() == [0, 1, 2, 3]


def test_coco_val_on_gt_boxes_carries_targets_and_areas(coco_mini_dir):
    ann = str(coco_mini_dir / "test_coco.json")
    dm = PoseDataModule(kind="coco", val_ann_file=ann, val_image_dir=str(coco_mini_dir), keypoints="auto",
                        batch_size=3, num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    check_batch(batch, 3, 17, 192, 256)
    assert (batch["area"] > 0).all() and dm.train_dataset is None


def test_mpii_mini_batches_and_pckh_ground_truth(mpii_mini_dir):
    ann = str(mpii_mini_dir / "test_mpii.json")
    dm = PoseDataModule(kind="mpii", train_ann_file=ann, train_image_dir=str(mpii_mini_dir), val_ann_file=ann,
                        val_image_dir=str(mpii_mini_dir), keypoints="mpii", input_size=(256, 256),
                        batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.keypoint_spec is MPII_KEYPOINTS and dm.val_ann_file is None and dm.dataset_kind == "mpii"
    check_batch(next(iter(dm.train_dataloader())), 2, 16, 256, 256)
    val = next(iter(dm.val_dataloader()))
    check_batch(val, 2, 16, 256, 256)
    # labelled MPII joints carry visibility 2, as the authors' loader
    assert set(np.unique(val["joints"][..., 2].numpy())) <= {0.0, 2.0}
    gt = dm.val_dataset.pckh_ground_truth(val["index"].numpy())
    assert gt["joints"].shape == (2, 16, 2) and gt["visible"].shape == (2, 16)
    # first entry of test_mpii.json: 1-based (804, 711) -> 0-based; the head segment fallback
    assert gt["joints"][0, 0].tolist() == [803.0, 710.0]
    top, neck = np.array([962.2409, 80.0306]), np.array([982.7591, 235.9694])
    assert gt["head_size"][0] == pytest.approx(np.linalg.norm(top - neck), rel=1e-5)
    # MPII box: 200 * scale * 1.25, centre 15 * scale px lower, 0-based
    assert val["scale"][0].tolist() == pytest.approx([4.718488 * 250] * 2, rel=1e-5)
    assert val["center"][0].tolist() == pytest.approx([965.0, 339.0 + 15 * 4.718488], rel=1e-5)


def test_mpii_head_boxes_file_gives_official_head_sizes(mpii_mini_dir, tmp_path):
    import json

    boxes = [[0, 0, 30, 40]] * 5
    path = tmp_path / "heads.json"
    path.write_text(json.dumps(boxes))
    ann = str(mpii_mini_dir / "test_mpii.json")
    dm = PoseDataModule(kind="mpii", val_ann_file=ann, val_image_dir=str(mpii_mini_dir), keypoints="mpii",
                        head_boxes=str(path), input_size=(256, 256), num_workers=0)
    dm.setup("validate")
    np.testing.assert_allclose(dm.val_dataset.head_sizes, 0.6 * 50.0)


def _compose(name, tmp_path, overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF / "data"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=[f"+paths.data_dir={tmp_path}", *overrides])
    # resolved as the train app does, minus the paths group this test stands in for
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("paths")
    return plain


@pytest.mark.parametrize("name", ["coco", "mpii", "synthetic"])
def test_configs_instantiate_with_the_documented_attributes(name, tmp_path):
    cfg = _compose(name, tmp_path)
    dm = instantiate(cfg)
    assert isinstance(dm, PoseDataModule)
    assert dm.dataset_kind == ("mpii" if name == "mpii" else "coco")
    assert dm.input_size == ((256, 256) if name == "mpii" else (192, 256))
    # without a codec given: the authors' at the data's input size
    assert dm.codec.input_size == dm.input_size and dm.codec.kernels == (15, 11, 9, 7, 5)
    assert dm.keypoint_spec.num_keypoints == (16 if name == "mpii" else 17)
    if name != "synthetic":
        # nothing under the root: a clear error naming the missing file before any training
        with pytest.raises(FileNotFoundError, match=str(tmp_path)):
            dm.setup("fit")


def test_synthetic_root_is_generated_on_first_use(tmp_path):
    cfg = _compose("synthetic", tmp_path, ["synthetic.num_train=6", "synthetic.num_val=2",
                                           "synthetic.image_size=[160,128]", "batch_size=2",
                                           # in-process: the generator's fork pool hangs once this
                                           # process has used OpenCV's thread pool (earlier tests)
                                           "synthetic.workers=1",
                                           "num_workers=0", "input_size=[48,64]"])
    dm = instantiate(cfg)
    dm.prepare_data()
    assert (tmp_path / "synthetic" / "annotations" / "person_keypoints_train.json").is_file()
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 2, 17, 48, 64)
    check_batch(next(iter(dm.val_dataloader())), len(dm.val_dataset) if len(dm.val_dataset) < 2 else 2,
                17, 48, 64, targets=False)


def test_workers_draw_different_augmentations_and_are_reproducible(coco_mini_dir):
    ann = str(coco_mini_dir / "test_coco.json")

    def first_batches():
        torch.manual_seed(0)
        dm = PoseDataModule(kind="coco", train_ann_file=ann, train_image_dir=str(coco_mini_dir),
                            val_ann_file=ann, val_image_dir=str(coco_mini_dir), batch_size=6, num_workers=2,
                            persistent_workers=False)
        dm.setup("fit")
        dm.train_dataset.records = [dm.train_dataset.records[0]] * 12  # one person, many draws
        return [b["scale"].clone() for b in dm.train_dataloader()]

    a, b = first_batches(), first_batches()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    scales = torch.cat(a)
    assert len({tuple(s.tolist()) for s in scales}) == len(scales)
