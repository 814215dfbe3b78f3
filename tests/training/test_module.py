"""The LightningModule with the real Trainer, DataModule, network and pycocotools (no mocks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from rsn_lightning import load_model
from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.models.rsn import RSN
from rsn_lightning.training.module import RSNLitModule

INPUT_SIZE = (64, 96)  # W, H: small enough for CPU tests, divisible by 32


def tiny_net(**kw) -> RSN:
    cfg = dict(num_stages=1, blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32)
    cfg.update(kw)
    return RSN(**cfg)


def make_datamodule(root, val_boxes="gt", batch_size=8, **kw) -> PoseDataModule:
    return PoseDataModule(kind="coco", root=str(root), layout="synthetic", val_boxes=val_boxes,
                          input_size=INPUT_SIZE, batch_size=batch_size, num_workers=0,
                          persistent_workers=False, pin_memory=False, **kw)


def make_trainer(tmp_path, **kw) -> pl.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0)
    defaults.update(kw)
    return pl.Trainer(**defaults)


def test_one_training_step_lowers_the_loss(synthetic_root, tmp_path):
    torch.manual_seed(0)
    dm = make_datamodule(synthetic_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    module = RSNLitModule(net=tiny_net(), optimizer={"scale_lr": False, "lr": 1e-3},
                          scheduler={"name": "constant", "warmup_steps": 0})
    vis = RSNLitModule._visibility(batch)
    assert batch["heatmaps"].shape[1:] == (5, 17, INPUT_SIZE[1] // 4, INPUT_SIZE[0] // 4)
    assert vis.max() == 2  # visible joints present, so the L2 terms have targets

    def loss():
        return module.criterion(module.net.forward_all(batch["image"]), batch["heatmaps"], vis)[0]

    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    before = loss()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert torch.isfinite(before) and after < before


@pytest.fixture(scope="module")
def overfit_run(synthetic_root, tmp_path_factory):
    """A tiny model trained on one fixed batch, then validated on those same people (GT boxes)."""
    pl.seed_everything(0)
    tmp = tmp_path_factory.mktemp("overfit")
    # no augmentation: the same crops every step, so the model can memorise them
    dm = make_datamodule(synthetic_root, batch_size=8,
                         augment={"scale_low": 0.0, "scale_high": 0.0, "prob_rotation": 0.0, "prob_flip": 0.0,
                                  "prob_half_body": 0.0, "random_ext": False})
    module = RSNLitModule(net=tiny_net(), optimizer={"lr": 2e-3, "scale_lr": False},
                          scheduler={"name": "constant", "warmup_steps": 0},
                          test={"flip": False, "num_vis_images": 4}, output_dir=str(tmp))
    trainer = make_trainer(tmp, max_epochs=150, overfit_batches=1, check_val_every_n_epoch=150)
    trainer.fit(module, datamodule=dm)
    return module, trainer, tmp


def test_tiny_model_overfits_a_batch_to_high_ap(overfit_run):
    module, trainer, tmp = overfit_run
    stats = module.last_val_stats
    assert stats, "validation produced no COCO stats"
    # the 8 training people (evaluated against the full val GT would punish unseen people, so the
    # results are re-scored only on the people of that batch below)
    results = json.loads(sorted((tmp / "results").glob("val_*.json"))[-1].read_text())
    assert len(results) == 8
    assert trainer.callback_metrics["train/loss"] < 60  # started in the thousands (peaks are 255)


def test_overfit_batch_predictions_match_their_ground_truth(overfit_run, synthetic_root):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    module, trainer, tmp = overfit_run
    results = json.loads(sorted((tmp / "results").glob("val_*.json"))[-1].read_text())
    # overfit_batches validates on training batches: evaluate against the train ground truth
    gt = COCO(str(synthetic_root / "annotations" / "person_keypoints_train.json"))
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "keypoints")
    ev.params.imgIds = sorted({r["image_id"] for r in results})
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] > 0.7


def test_validation_writes_pictures_and_results(overfit_run):
    module, trainer, tmp = overfit_run
    pictures = list((tmp / "pictures").glob("val_epoch*.png"))
    assert pictures
    import cv2

    img = cv2.imread(str(pictures[0]))
    assert img.shape[0] == INPUT_SIZE[1] and img.shape[1] == INPUT_SIZE[0] * 4


def test_lightning_checkpoint_loads_as_a_bare_network(overfit_run, tmp_path):
    module, trainer, _ = overfit_run
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    net = load_model(path)  # weights_only=True inside
    x = torch.randn(2, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    module.net.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), module.net(x), atol=1e-5)
    assert net.normalization.channel_order == "BGR"
    assert net.keypoints == "coco"


def _fit(root, tmp, max_epochs, ckpt_path=None):
    pl.seed_everything(123, workers=True)
    dm = make_datamodule(root, batch_size=4)
    module = RSNLitModule(net=tiny_net(), optimizer={"lr": 1e-3, "scale_lr": False},
                          scheduler={"name": "linear", "warmup_steps": 2}, test={"num_vis_images": 0},
                          output_dir=str(tmp))
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(tmp / "checkpoints"), save_last=True,
                                        monitor="val/AP", mode="max")
    trainer = make_trainer(tmp, max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=2,
                           callbacks=[ckpt], deterministic=True)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, trainer


def test_resume_reproduces_the_uninterrupted_run(synthetic_root, tmp_path):
    straight, _ = _fit(synthetic_root, tmp_path / "straight", max_epochs=2)
    _fit(synthetic_root, tmp_path / "resumed", max_epochs=1)
    resumed, trainer = _fit(synthetic_root, tmp_path / "resumed", max_epochs=2, ckpt_path="last")
    assert trainer.current_epoch == 2
    for (name, a), (_, b) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert resumed.last_val_stats["AP"] == pytest.approx(straight.last_val_stats["AP"])
    assert np.isfinite(resumed.last_val_stats["AP"])
