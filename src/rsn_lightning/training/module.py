"""The RSN LightningModule: thin glue between the network, the loss, the optimiser and the evaluation.

Everything with a number in it lives elsewhere: the loss (``loss``), the optimiser and schedule
(``schedule``), the scoring (``validators``), the NaN/Inf-loss policy (``nonfinite``), the checkpoint's
metadata (``checkpoint_io``); what it knows of the data is handed in (``validators.module_inputs``);
pictures, throughput and lr are callbacks (conf/callbacks). Every setting comes from the YAML
(conf/model/rsn18.yaml): this class has no defaults of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from rsn_lightning import strict_device
from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.keypoints import KeypointSpec
from rsn_lightning.models.tta import average_with_mirror
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.test_settings import TEST_SETTINGS
from rsn_lightning.training.checkpoint_io import add_resume_state, checkpoint_metadata, set_rng_states
from rsn_lightning.training.hparams import checked_settings
from rsn_lightning.training.loss import RSNLoss
from rsn_lightning.training.metrics import ValidationPredictions
from rsn_lightning.training.nonfinite import NonFiniteLossPolicy
from rsn_lightning.training.schedule import build_optimizer, build_recipe_scheduler, recipe_optimization

log = logging.getLogger(__name__)

# model.test: the test-time settings of validation (a checkpoint records them: test_settings.TEST_SETTINGS)
TEST_KEYS = ("flip", "flip_shift", "rescore", "score_threshold", "oks_nms", "nms_threshold")


class RSNLitModule(NonFiniteLossPolicy, pl.LightningModule):
    # no FLOP count for Lightning's ThroughputMonitor: it logs images/s and batches/s
    flops_per_batch = None

    def __init__(self, net: nn.Module, optimizer: dict, scheduler: dict, loss: dict, test: dict,
                 output_dir: str | None, compile: bool, channels_last: bool, nonfinite_loss: str,
                 codec: HeatmapCodec, keypoints: KeypointSpec, normalization: InputNormalization,
                 validator: Callable[[dict, dict, Path], dict], batch_size: int, box_extension):
        """``codec`` to ``box_extension``: the run's data, from the apps (``validators.module_inputs``)."""
        super().__init__()
        self.init_nonfinite_policy(nonfinite_loss)
        self.net = net
        # the run's one codec: rsn-train gives the DataModule the same object
        self.codec, self.keypoint_spec, self.normalization = codec, keypoints, normalization
        self.validator, self.batch_size = validator, int(batch_size)
        self.box_extension = [float(v) for v in box_extension]
        self.optimizer_cfg = checked_settings("optimizer", optimizer, build_optimizer)
        self.scheduler_cfg = checked_settings("scheduler", scheduler, build_recipe_scheduler)
        self.loss_cfg = checked_settings("loss", loss, RSNLoss)
        self.test_cfg = checked_settings("test", test, TEST_KEYS)
        self.output_dir = output_dir
        self.save_hyperparameters(
            {"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg, "loss": self.loss_cfg,
             "test": self.test_cfg, "arch": self._arch(), "compile": compile, "channels_last": channels_last},
            logger=False,
        )
        self.criterion = RSNLoss(**self.loss_cfg)
        self.compile = compile
        self.channels_last = channels_last
        self.predictions = ValidationPredictions()
        self.last_val_stats: dict[str, float] = {}

    def _arch(self) -> dict | None:
        return self.net.arch_config() if hasattr(self.net, "arch_config") else None

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.compile and stage == "fit":
            # compile the bound methods, not a wrapper module: the state dict keeps its keys, so
            # checkpoints load with or without compile
            self.net.forward_all = torch.compile(self.net.forward_all)
            self.net.compile()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    # ------------------------------------------------------------------ training
    def _outputs_all(self, images: torch.Tensor):
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net.forward_all(images)

    @staticmethod
    def _visibility(batch: dict) -> torch.Tensor:
        # joints[..., 2] is 0/1/2 after augmentation; target_weight zeroes joints that left the crop
        return batch["joints"][..., 2] * batch["target_weight"]

    # RSN_STRICT_DEVICE=1: the batch (already on the device) behaves like a GPU's toward host code
    # (strict_device.py). In place, in the batch hooks: overriding transfer_batch_to_device would make
    # Lightning warn on every run with a DataModule
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if strict_device.enabled() and isinstance(batch, dict):
            batch.update(strict_device.to_device(batch, module=self))

    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.on_train_batch_start(batch, batch_idx)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self._outputs_all(batch["image"])
        total, parts = self.criterion(outputs, batch["heatmaps"], self._visibility(batch))
        nonfinite = ~torch.isfinite(total.detach())
        if not self._skip_on_device(nonfinite, batch_idx):
            # no optimiser step that can skip on the device: decide on the host, one sync per step; every rank
            # takes the same decision, so a skip never leaves DDP ranks waiting for each other
            if self.trainer.strategy.reduce_boolean_decision(bool(nonfinite), all=False):
                return self._on_nonfinite_loss(batch_idx)
        bs = batch["image"].shape[0]
        # logged tensors stay on the device and Lightning reads them at its logging steps; not prog_bar=True,
        # which Lightning reads at every step (a host sync): the progress bars show the loss every
        # trainer.log_every_n_steps themselves (training/progress.py)
        self.log("train/loss", total, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        return total

    # ------------------------------------------------------------------ validation
    def test_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """(final heatmaps with the configured flip test, every unit's heatmaps of the plain input).

        One pass of ``forward_all`` gives both the loss's unit heatmaps and the plain half of the flip
        test (``forward`` is its last unit), so validation runs the network twice per batch, not three
        times. The flip test is the authors': average with the mirrored input's heatmaps, joints
        swapped back, no shift (``models.tta``)."""
        outputs = self._outputs_all(images)
        heatmaps = outputs[-1][-1]
        if self.test_cfg["flip"]:
            mirrored = self._outputs_all(images.flip(-1))[-1][-1]
            heatmaps = average_with_mirror(heatmaps, mirrored, self.keypoint_spec.flip_index,
                                           self.test_cfg["flip_shift"])
        return heatmaps, outputs

    def on_validation_epoch_start(self) -> None:
        self.predictions.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Decodes the batch into ``self.predictions``; returns the keypoints (image px) and their scores
        for the callbacks (the validation pictures)."""
        images = batch["image"]
        heatmaps, outputs = self.test_outputs(images)
        if "heatmaps" in batch and batch["heatmaps"].numel() > 0:
            total, _ = self.criterion(outputs, batch["heatmaps"], self._visibility(batch))
            self.log("val/loss", total, batch_size=images.shape[0], sync_dist=True)
        center, scale = batch["center"].cpu().numpy(), batch["scale"].cpu().numpy()
        coords, scores = self.codec.decode(heatmaps.float().cpu().numpy(), center, scale)
        self.predictions.update(coords=coords, scores=scores, box_score=batch["box_score"].reshape(-1),
                                image_id=batch["image_id"].reshape(-1), index=batch["index"].reshape(-1),
                                center=center, scale=scale)
        return {"coords": coords, "scores": scores}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        preds = self.predictions.compute()  # every rank's, each sample once
        if not preds:
            return
        base = Path(self.output_dir) if self.output_dir else Path(self.trainer.default_root_dir)
        stats = None
        # scored once, on rank 0 (every rank holds the gathered predictions); the others take its numbers
        if self.trainer.is_global_zero:
            stats = self._score(preds, base / "results" / f"val_epoch{self.current_epoch:03d}.json")
        stats = self.trainer.strategy.broadcast(stats, src=0)
        self.last_val_stats = stats
        self.log_dict({f"val/{k}": float(v) for k, v in stats.items()}, sync_dist=False, rank_zero_only=False)

    def _score(self, preds: dict, path: Path) -> dict[str, float]:
        stats = self.validator(preds, self.test_cfg, path)  # the dataset's scoring: validators.py
        log.info("validation: %s (predictions in %s)",
                 ", ".join(f"{k} {stats[k]:.4f}" for k in ("AP", "PCKh") if k in stats), path)
        return {k: float(v) for k, v in stats.items()}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return recipe_optimization(self.parameters(), self.trainer, self.batch_size, self.optimizer_cfg,
                                   self.scheduler_cfg)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(checkpoint_metadata(self.net, self.normalization, self.keypoint_spec.name,
                                              self.codec, self.test_settings()))
        add_resume_state(checkpoint)

    def test_settings(self) -> dict:
        """The test-time settings a checkpoint records (``test_settings.TEST_SETTINGS``)."""
        return {k: self.box_extension if k == "box_extension" else self.test_cfg[k] for k in TEST_SETTINGS}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # a resumed run draws the same shuffles and augmentations as the run that was never stopped:
        # the data's own RNGs are restored by the DataModule; these are the global ones that user code
        # and third-party augmentations draw from
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
