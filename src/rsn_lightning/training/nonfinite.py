"""The NaN/Inf-loss policy of training (``model.nonfinite_loss``): "stop" saves last.ckpt (weights from
before the step) and stops with an error; "skip" leaves the step out (no update) and counts it. A mixin of
the LightningModule: it needs ``self.trainer`` and ``self.log``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rsn_lightning.errors import UserFacingError

log = logging.getLogger(__name__)

NONFINITE_LOSS = ("stop", "skip")


class NonFiniteLossError(UserFacingError, FloatingPointError):
    """Training stopped on a NaN/Inf loss (``nonfinite_loss="stop"``)."""


class NonFiniteLossPolicy:
    """Counts and acts on training steps whose loss is NaN/Inf."""

    def init_nonfinite_policy(self, nonfinite_loss: str) -> None:
        if nonfinite_loss not in NONFINITE_LOSS:
            raise ValueError(f"nonfinite_loss must be one of {NONFINITE_LOSS}, got {nonfinite_loss!r}")
        self.nonfinite_loss = nonfinite_loss
        # on the device, so the training step never waits for its loss: how many steps had a non-finite loss,
        # the first of them, and whether one is in the current gradient-accumulation window; the host reads
        # them every trainer.log_every_n_steps steps (_check_nonfinite)
        self.register_buffer("_nonfinite_count", torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("_first_nonfinite_step", torch.full((), -1, dtype=torch.int64), persistent=False)
        self.register_buffer("_window_nonfinite", torch.zeros((), dtype=torch.bool), persistent=False)
        self._nonfinite_reported = 0

    def _skip_on_device(self, nonfinite: torch.Tensor, batch_idx: int) -> bool:
        """With a fused optimiser, a step whose loss is NaN/Inf is left out on the device: its ``found_inf``
        (what GradScaler hands a fused step under fp16) makes the kernel skip the update and the step count,
        and nothing waits for the loss. False where the optimiser has no such step."""
        optimizer = self.optimizers(use_pl_optimizer=False) if self._trainer is not None else None
        if not isinstance(optimizer, torch.optim.Optimizer) or not optimizer.defaults.get("fused"):
            return False
        if batch_idx % max(1, int(self.trainer.accumulate_grad_batches)) == 0:
            self._window_nonfinite.zero_()
        self._window_nonfinite |= nonfinite
        self._nonfinite_count += nonfinite
        self._first_nonfinite_step.copy_(torch.where(nonfinite & (self._first_nonfinite_step < 0),
                                                     self.global_step, self._first_nonfinite_step))
        optimizer.found_inf = self._window_nonfinite.float()
        return True

    @property
    def nonfinite_steps(self) -> int:
        """Training steps with a NaN/Inf loss so far (reads the device counter: a host sync)."""
        return int(self._nonfinite_count)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        every = max(1, int(self.trainer.log_every_n_steps))
        if self.trainer.global_step % every == 0 or batch_idx + 1 == self.trainer.num_training_batches:
            self._check_nonfinite()

    def on_train_end(self) -> None:
        self._check_nonfinite()

    def _check_nonfinite(self) -> None:
        """Every ``trainer.log_every_n_steps`` steps, at each epoch's end and at the fit's end: act on the
        steps whose loss was NaN/Inf since the last check (the one host sync of the policy)."""
        count, first = int(self._nonfinite_count), int(self._first_nonfinite_step)
        new = count - self._nonfinite_reported
        if not self.trainer.strategy.reduce_boolean_decision(new > 0, all=False):
            return
        self._nonfinite_reported = count
        where = f"step {first}" + (f" and {count - 1} more step(s) up to step {self.global_step - 1}"
                                   if count > 1 else "") if first >= 0 else f"a step before {self.global_step}"
        if self.nonfinite_loss == "skip":
            log.warning("NaN/Inf loss at %s: left out (%d step(s) so far; model.nonfinite_loss=skip)", where, count)
            self.log("train/nonfinite_steps", float(count), batch_size=1)
            return
        saved = self._save_last("weights without those steps' updates saved to")
        raise NonFiniteLossError(
            f"the training loss is NaN/Inf at {where} (found at step {self.global_step}); their updates were left "
            f"out; {saved}. Lower model.optimizer.lr, check the data, or set model.nonfinite_loss=skip to leave "
            "such steps out")

    def _save_last(self, what: str) -> str:
        callback = self.trainer.checkpoint_callback
        if callback is None or not callback.dirpath:
            return "no checkpoint folder configured"
        path = Path(callback.dirpath) / "last.ckpt"
        self.trainer.save_checkpoint(path)
        return f"{what} {path}"

    def _on_nonfinite_loss(self, batch_idx: int) -> None:
        self._nonfinite_count += 1
        self._nonfinite_reported += 1
        where = f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        if self.nonfinite_loss == "skip":
            log.warning("NaN/Inf loss at %s: step skipped (%d so far; model.nonfinite_loss=skip)", where,
                        self._nonfinite_reported)
            self.log("train/nonfinite_steps", float(self._nonfinite_reported), batch_size=1)
            return None
        # the weights are still those before this step: a usable checkpoint to resume or inspect
        saved = self._save_last("weights before this step saved to")
        raise NonFiniteLossError(
            f"the training loss is NaN/Inf at {where}; {saved}. Lower model.optimizer.lr, check the data, "
            "or set model.nonfinite_loss=skip to leave such steps out")
