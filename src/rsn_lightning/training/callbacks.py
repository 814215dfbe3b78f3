"""Callbacks of this project (conf/callbacks): the validation pictures, and the batch size that
Lightning's ThroughputMonitor counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from rsn_lightning.geometry import apply_affine, crop_affine


def batch_size(batch: Any) -> int:
    """The number of crops in a batch of the pose DataModule (0 for anything else)."""
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
        return int(batch["image"].shape[0])
    return 0


class ValidationPictures(pl.Callback):
    """At each validation (not the sanity check), the first ``num_images`` crops of the first batch with
    their predicted skeletons, side by side: ``<dirpath>/val_epoch<NNN>.png`` (``dirpath`` None:
    ``<trainer.default_root_dir>/pictures``) and to every logger that takes images (wandb, TensorBoard).
    Reads the decoded keypoints (image px) that ``validation_step`` returns."""

    def __init__(self, num_images: int = 8, dirpath: str | None = None) -> None:
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        self.num_images = num_images
        self.dirpath = dirpath
        self._picture: dict[str, np.ndarray] | None = None

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._picture = None

    @rank_zero_only
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._picture is not None or trainer.sanity_checking or not self.num_images or not outputs:
            return
        images = batch["image"][: self.num_images].float().cpu().numpy()
        center, scale = batch["center"].cpu().numpy(), batch["scale"].cpu().numpy()
        size = (images.shape[-1], images.shape[-2])
        crops = [pl_module.normalization.denormalize(image) for image in images]
        in_crop = [apply_affine(outputs["coords"][i], crop_affine(center[i], scale[i], 0, size))
                   for i in range(len(crops))]
        self._picture = {"crops": crops, "keypoints": in_crop, "scores": outputs["scores"][: len(crops)]}

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._picture is None:
            return
        import cv2

        from rsn_lightning.visualize import draw_pose

        tiles = [draw_pose(c, k[None], s[None], pl_module.keypoint_spec)
                 for c, k, s in zip(self._picture["crops"], self._picture["keypoints"], self._picture["scores"])]
        grid = np.concatenate(tiles, axis=1)
        folder = Path(self.dirpath or Path(trainer.default_root_dir) / "pictures")
        out = folder / f"val_epoch{trainer.current_epoch:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), grid)
        rgb = np.ascontiguousarray(grid[..., ::-1])
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # wandb
                logger.log_image(key="val/predictions", images=[rgb], step=trainer.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):  # tensorboard
                logger.experiment.add_image("val/predictions", rgb, trainer.global_step, dataformats="HWC")


class ThroughputMonitor(pl.callbacks.ThroughputMonitor):
    """Lightning's ThroughputMonitor, timed at the logged training steps only.

    Lightning's waits for the GPU (``torch.cuda.synchronize``) at every training batch so that its clock
    is right; this one counts every batch but reads the clock, and so waits, only at the steps it logs
    (every ``trainer.log_every_n_steps``): the same images/s over each logged interval (with
    ``window_size: 2``, the last interval), without a host sync per step. Validation is timed as
    Lightning's (its predictions are copied to the host at every batch anyway)."""

    def _update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, iter_num: int) -> None:
        stage = trainer.state.stage
        if trainer.training and not trainer._logger_connector.should_update_logs:
            self._samples[stage] += self.batch_size_fn(batch)
            self._batches[stage] += 1
            return
        super()._update(trainer, pl_module, batch, iter_num)


class LastCheckpointEvery(pl.callbacks.ModelCheckpoint):
    """``last.ckpt`` refreshed mid-epoch every ``minutes`` of wall time, so a killed job loses at most that
    much training whatever its speed (a fixed step count is minutes on a CPU, seconds on a GPU node).

    Whether the time is up is decided on rank 0 and broadcast every ``check_every_n_steps`` steps only
    (Lightning's ``train_time_interval`` broadcasts at every batch: a collective, and a host sync, per
    step); every rank then saves together."""

    def __init__(self, minutes: float, check_every_n_steps: int = 50, **kwargs) -> None:
        if minutes <= 0 or check_every_n_steps < 1:
            raise ValueError(f"minutes must be > 0 and check_every_n_steps >= 1, got {minutes}, {check_every_n_steps}")
        super().__init__(save_top_k=0, save_last=True, **kwargs)
        self.interval_s = float(minutes) * 60.0
        self.check_every_n_steps = int(check_every_n_steps)
        self._since = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._since = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.check_every_n_steps or trainer.sanity_checking:
            return
        due = trainer.strategy.broadcast(time.monotonic() - self._since >= self.interval_s, src=0)
        if due:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._since = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the epoch's end is the other ModelCheckpoint's (conf/callbacks/model_checkpoint.yaml)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass
