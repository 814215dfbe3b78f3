"""Validation predictions accumulated by the torchmetrics Metric, and an MPII validation through the real
Trainer that leaves its predictions as a results JSON beside the PCKh numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytorch_lightning as pl
from module_settings import lit_module
from test_module import make_trainer, tiny_net

from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.evaluation.pckh import pckh_table
from rsn_lightning.training.metrics import ValidationPredictions


def batch(indices, offset=0.0):
    n = len(indices)
    index = np.asarray(indices)
    return {"coords": np.stack([np.full((3, 2), i + offset) for i in index]), "scores": np.full((n, 3), 0.5),
            "box_score": np.ones(n), "image_id": index + 100, "index": index, "center": np.zeros((n, 2)),
            "scale": np.ones((n, 2))}


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")  # compute() after reset(), on purpose
def test_each_sample_is_kept_once_in_the_order_added():
    metric = ValidationPredictions()
    metric.update(**batch([4, 1, 2]))
    # DistributedSampler pads with repeats of the first samples; a repeat's values are not used again
    metric.update(**batch([3, 4], offset=0.25))
    preds = metric.compute()
    assert preds["index"].tolist() == [4, 1, 2, 3]
    assert preds["image_id"].tolist() == [104, 101, 102, 103]
    assert preds["coords"][:, 0, 0].tolist() == [4.0, 1.0, 2.0, 3.25]
    metric.reset()
    assert metric.compute() == {}


def test_mpii_validation_writes_its_predictions_beside_the_pckh(mpii_mini_dir, tmp_path):
    ann = mpii_mini_dir / "test_mpii.json"
    dm = PoseDataModule(kind="mpii", val_ann_file=str(ann), val_image_dir=str(mpii_mini_dir), keypoints="mpii",
                        input_size=(64, 64), batch_size=2, num_workers=0, persistent_workers=False,
                        pin_memory=False)
    pl.seed_everything(0)
    module = lit_module(tiny_net(num_keypoints=16), dm, test={"flip": False}, output_dir=str(tmp_path))
    make_trainer(tmp_path).validate(module, datamodule=dm)
    results = json.loads((tmp_path / "results" / "val_epoch000.json").read_text())
    people = json.loads(ann.read_text())
    assert [r["image"] for r in results] == [p["image"] for p in people]
    coords = np.array([r["keypoints"] for r in results]).reshape(len(people), 16, 3)[..., :2]
    # the file's keypoints give the logged PCKh again
    gt = dm.val_dataset.pckh_ground_truth(np.arange(len(people)))
    table = pckh_table(coords, gt["joints"], gt["visible"], gt["head_size"])
    assert module.last_val_stats["PCKh"] == pytest.approx(table["Mean"], abs=1e-6)
    assert float(module.trainer.callback_metrics["val/PCKh"]) == pytest.approx(table["Mean"], abs=1e-4)
    # image ids: one per distinct image, in order of first appearance
    ids: dict[str, int] = {}
    assert [r["image_id"] for r in results] == [ids.setdefault(p["image"], len(ids)) for p in people]
