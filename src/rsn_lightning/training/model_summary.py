"""The model summary with real FLOPs: Lightning counts them only on an ``example_input_array``, which the
LightningModule does not carry (its input size is the data's), so the summary printed "Total FLOPs: 0"."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichModelSummary


class ModelSummaryWithFlops(RichModelSummary):
    """``RichModelSummary`` run on one zero image of the datamodule's ``input_size`` (W, H), so the table
    shows each layer's FLOPs and input/output sizes, and the total is the real count for one image
    (torch's flop counter: 2 FLOPs per multiply-add, so twice ``models.flops.count_macs``)."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        input_size = getattr(trainer.datamodule, "input_size", None)
        if pl_module.example_input_array is None and input_size is not None:
            width, height = input_size
            pl_module.example_input_array = torch.zeros(1, 3, height, width)
        super().on_fit_start(trainer, pl_module)
