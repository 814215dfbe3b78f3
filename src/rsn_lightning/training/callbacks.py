"""Callbacks of this project (conf/callbacks): the validation pictures, and the batch size that
Lightning's ThroughputMonitor counts."""

from __future__ import annotations

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

        from rsn_lightning.inference.visualize import draw_pose

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
