"""Progress that reads in a log file: a plain line every N training steps when stdout is not a terminal.

Lightning's rich bar redraws one terminal line and writes nothing useful to a file, so a SLURM job's log
stays silent for a whole epoch. ``progress_bar()`` keeps the rich bar in terminals and otherwise returns
``PlainProgress``, which prints lines such as (a 2-epoch quickstart on 96 images, a line every 2 steps)::

    epoch 1/2  step 4/6  loss 996.5795  lr 8.00e-04  96.8 img/s  ETA 0:00:03
    epoch 1/2  validation  val/AP 0.0000  val/AR 0.0000  (0.3 s)
"""

from __future__ import annotations

import datetime
import math
import sys
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar
from pytorch_lightning.trainer.states import TrainerFn

from rsn_lightning.training.callbacks import batch_size

# the validation figures worth a line; the rest (per keypoint, per stage) go to the loggers
HEADLINE_METRICS = ("val/AP", "val/AR", "val/PCKh", "val/loss")


def progress_bar(every_n_steps: int = 50, terminal: bool | None = None) -> ProgressBar:
    """The rich bar when stdout is a terminal (``terminal=None`` asks stdout), else ``PlainProgress``."""
    if terminal is None:
        terminal = sys.stdout.isatty()
    return RichProgress(every_n_steps) if terminal else PlainProgress(every_n_steps)


class RichProgress(RichProgressBar):
    """Lightning's rich bar, with the training loss and the logged numbers read every ``every_n_steps``
    training batches. Reading them turns tensors into Python numbers, which on a GPU waits for the step to
    finish: Lightning's bar reads them at every batch, and so does Lightning for every metric logged with
    ``prog_bar=True``, which is why the module logs none and this bar shows the step's loss itself. The bar
    itself moves at every batch."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._metrics_due = True
        self._loss: float | None = None

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        if self._loss is not None:
            metrics["train/loss"] = f"{self._loss:.4f}"
        return metrics

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._metrics_due = (batch_idx + 1) % self.every_n_steps == 0 or batch_idx + 1 == self.total_train_batches
        if self._metrics_due:
            self._loss = _loss(outputs)
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._metrics_due = True

    def _update_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics_due:
            super()._update_metrics(trainer, pl_module)


class PlainProgress(ProgressBar):
    """One line every ``every_n_steps`` training batches and at each epoch's last batch (epoch, batch,
    loss, lr, images/s over the lines' interval, ETA of the fit), and one line per validation."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._fit_start = 0.0
        self._fit_start_step = 0
        self._interval_start = 0.0
        self._interval_images = 0
        self._val_start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args, **kwargs) -> None:
        if self._enabled:
            print(*args, **kwargs, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = self._interval_start = time.perf_counter()
        self._fit_start_step = trainer.global_step
        self._interval_images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning skips this hook for the first epoch of a run resumed from an epoch's end checkpoint;
        # on_train_start has set the interval then
        self._interval_start = time.perf_counter()
        self._interval_images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._interval_images += batch_size(batch)
        total = self.total_train_batches
        done = batch_idx + 1
        if done % self.every_n_steps and done != total:
            return
        now = time.perf_counter()
        rate = self._interval_images / max(now - self._interval_start, 1e-9)
        self._interval_start, self._interval_images = now, 0
        parts = [self._epoch(trainer), f"step {done}/{_count(total)}"]
        loss = _loss(outputs)
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}")
        parts.append(f"{rate:.1f} img/s")
        eta = self._eta(trainer, now)
        if eta is not None:
            parts.append(f"ETA {eta}")
        self.print("  ".join(parts))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        shown = [f"{k} {float(metrics[k]):.4f}" for k in HEADLINE_METRICS if k in metrics]
        elapsed = time.perf_counter() - self._val_start
        when = self._epoch(trainer) if trainer.state.fn == TrainerFn.FITTING else "evaluation"
        self.print("  ".join([when, "validation", *shown, f"({elapsed:.1f} s)"]))

    @staticmethod
    def _epoch(trainer: pl.Trainer) -> str:
        last = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        return f"epoch {trainer.current_epoch + 1}/{last}"

    def _eta(self, trainer: pl.Trainer, now: float) -> str | None:
        """Remaining optimizer steps of the whole fit at the fit's mean pace (validations included)."""
        done = trainer.global_step - self._fit_start_step
        try:
            total = trainer.estimated_stepping_batches
        except (RuntimeError, ValueError):
            return None
        if done <= 0 or not math.isfinite(total):
            return None
        seconds = (now - self._fit_start) / done * max(total - trainer.global_step, 0)
        return str(datetime.timedelta(seconds=round(seconds)))


def _loss(outputs) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return float(loss) if isinstance(loss, torch.Tensor) else None


def _count(total) -> str:
    return str(int(total)) if isinstance(total, (int, float)) and math.isfinite(total) else "?"
