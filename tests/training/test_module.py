"""The LightningModule with the real Trainer, DataModule, network and pycocotools (no mocks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from module_settings import lit_module

from rsn_lightning import load_model
from rsn_lightning.data.datamodule import PoseDataModule
from rsn_lightning.models.rsn import RSN
from rsn_lightning.training.callbacks import ValidationPictures
from rsn_lightning.training.module import RSNLitModule

INPUT_SIZE = (64, 96)  # W, H: small enough for CPU tests, divisible by 32


def tiny_net(**kw) -> RSN:
    # output_gain as the CPU preset: lets a few hundred steps reach the targets' 255 scale
    cfg = dict(num_stages=1, blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32,
               output_gain=16.0)
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
    module = lit_module(tiny_net(), dm, optimizer={"scale_lr": False, "lr": 1e-3},
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
    module = lit_module(tiny_net(), dm, optimizer={"lr": 2e-3, "scale_lr": False},
                        scheduler={"name": "constant", "warmup_steps": 0}, test={"flip": False}, output_dir=str(tmp))
    trainer = make_trainer(tmp, max_epochs=150, overfit_batches=1, check_val_every_n_epoch=150,
                           callbacks=[ValidationPictures(num_images=4)])
    trainer.fit(module, datamodule=dm)
    return module, trainer, tmp, dm


def test_tiny_model_overfits_a_batch(overfit_run):
    """The memorised batch is decoded (the authors' decoding) back onto its labels."""
    from rsn_lightning.codec import decode_heatmaps_to_input

    module, trainer, tmp, dm = overfit_run
    loader = torch.utils.data.DataLoader(dm.train_dataset, batch_size=8, shuffle=False)
    batch = next(iter(loader))  # what overfit_batches=1 trained on (it turns shuffling off)
    module.net.eval()
    with torch.no_grad():
        heatmaps = module.net(batch["image"]).numpy()
    coords, _ = decode_heatmaps_to_input(heatmaps, INPUT_SIZE)
    joints = batch["joints"].numpy()
    visible = (joints[..., 2] > 1) & (batch["target_weight"].numpy() > 0)
    error = np.linalg.norm(coords - joints[..., :2], axis=-1)[visible]
    # one heatmap cell is 4 input pixels: nearly every visible joint must land within it
    assert visible.sum() > 50
    assert np.mean(error < 4.0) > 0.9, f"median error {np.median(error):.1f} px"


def test_validation_results_are_coco_results(overfit_run):
    module, trainer, tmp, _ = overfit_run
    stats = module.last_val_stats
    assert {"AP", "AP50", "AR"} <= set(stats)
    results = json.loads(sorted((tmp / "results").glob("val_*.json"))[-1].read_text())
    assert len(results) == 8
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in results)


def test_validation_writes_pictures_and_results(overfit_run):
    module, trainer, tmp, _ = overfit_run
    pictures = list((tmp / "pictures").glob("val_epoch*.png"))
    assert pictures
    import cv2

    img = cv2.imread(str(pictures[0]))
    assert img.shape[0] == INPUT_SIZE[1] and img.shape[1] == INPUT_SIZE[0] * 4


def test_lightning_checkpoint_loads_as_a_bare_network(overfit_run, tmp_path):
    module, trainer, _, _ = overfit_run
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    # the module trains channels-last (the default); its checkpoint stays in the default layout
    assert any(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
               for t in module.net.state_dict().values())
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert all(t.is_contiguous() for t in saved.values())
    net = load_model(path)  # weights_only=True inside
    x = torch.randn(2, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    module.net.eval()
    with torch.no_grad():
        ref = module.net(x.contiguous(memory_format=torch.channels_last))
        out = net(x)
    # the two layouts take different convolution kernels: equal up to float32 rounding
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert net.normalization.channel_order == "BGR"
    assert net.keypoints == "coco"


class StopAfterFirstEpoch(pl.Callback):
    """An interruption: the run is configured for 2 epochs (same LR schedule) but stops after 1."""

    def on_validation_end(self, trainer, pl_module):
        trainer.should_stop = True


def _fit(root, tmp, max_epochs, ckpt_path=None, interrupt=False):
    pl.seed_everything(123, workers=True)
    dm = make_datamodule(root, batch_size=4)
    module = lit_module(tiny_net(), dm, optimizer={"lr": 1e-3, "scale_lr": False},
                        scheduler={"name": "linear", "warmup_steps": 2}, output_dir=str(tmp))
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(tmp / "checkpoints"), save_last=True,
                                        monitor="val/AP", mode="max")
    trainer = make_trainer(tmp, max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=2,
                           callbacks=[ckpt] + ([StopAfterFirstEpoch()] if interrupt else []), deterministic=True)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, trainer


def test_resume_reproduces_the_uninterrupted_run(synthetic_root, tmp_path):
    straight, _ = _fit(synthetic_root, tmp_path / "straight", max_epochs=2)
    _, stopped = _fit(synthetic_root, tmp_path / "resumed", max_epochs=2, interrupt=True)
    assert stopped.current_epoch == 1
    resumed, trainer = _fit(synthetic_root, tmp_path / "resumed", max_epochs=2, ckpt_path="last")
    assert trainer.current_epoch == 2
    for (name, a), (_, b) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert resumed.last_val_stats["AP"] == pytest.approx(straight.last_val_stats["AP"])
    assert np.isfinite(resumed.last_val_stats["AP"])



def test_validation_loss_and_flip_test_come_from_two_passes():
    """One forward_all pass serves the loss and the plain half of the flip test: the same heatmaps and
    loss as the previous three-pass computation (flip_test, then forward_all for the loss)."""
    from rsn_lightning.keypoints import COCO_KEYPOINTS
    from rsn_lightning.models.tta import flip_test

    torch.manual_seed(0)
    module = lit_module(tiny_net(), test={"flip": True})
    module.setup("validate")
    module.eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, INPUT_SIZE[1], INPUT_SIZE[0], generator=gen)
    targets = torch.rand(3, 5, 17, INPUT_SIZE[1] // 4, INPUT_SIZE[0] // 4, generator=gen) * 255
    visible = torch.full((3, 17), 2.0)
    passes = []
    handle = module.net.stem.register_forward_hook(lambda *_: passes.append(1))
    with torch.no_grad():
        heatmaps, outputs = module.test_outputs(images)
        loss, _ = module.criterion(outputs, targets, visible)
        assert len(passes) == 2
        handle.remove()
        x = images.contiguous(memory_format=torch.channels_last)
        ref_heatmaps = flip_test(module.net, x, COCO_KEYPOINTS.flip_index)
        ref_loss, _ = module.criterion(module.net.forward_all(x), targets, visible)
    torch.testing.assert_close(heatmaps, ref_heatmaps, rtol=0, atol=0)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)


def test_settings_come_whole_from_the_yaml():
    """No defaults in the module: a missing or unknown key of a settings group is named."""
    with pytest.raises(ValueError, match=r"model.optimizer: unknown keys \['lrr'\]; expected \['betas', 'fused', 'lr'"):
        lit_module(tiny_net(), optimizer={"lrr": 1e-3})
    with pytest.raises(ValueError,
                       match=r"model.optimizer: missing keys \['betas', 'fused', 'lr', 'name', 'reference_batch'"):
        RSNLitModule(tiny_net(), optimizer=None, scheduler=None, loss=None, test=None, output_dir=None, codec=None,
                     keypoints=None, normalization=None, validator=None, batch_size=1, box_extension=(0, 0),
                     compile=False, channels_last=True, nonfinite_loss="stop")
