"""The RSN LightningModule: thin glue between the network, the loss, the optimiser and the evaluation.

Everything with a number in it lives elsewhere: the loss (``loss``), the optimiser and schedule
(``schedule``), the scoring (``evaluation.validation``), the checkpoint's metadata (``checkpoint_io``);
pictures, throughput and lr are callbacks (conf/callbacks). Every setting comes from the YAML
(conf/model/rsn18.yaml): this class has no defaults of its own.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsn_lightning import strict_device
from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.errors import UserFacingError
from rsn_lightning.keypoints import COCO_KEYPOINTS, KeypointSpec
from rsn_lightning.models.checkpoint import TEST_SETTINGS, authors_test_settings
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.training.checkpoint_io import checkpoint_metadata, rng_states, set_rng_states
from rsn_lightning.training.loss import RSNLoss
from rsn_lightning.training.metrics import ValidationPredictions
from rsn_lightning.training.schedule import build_optimizer, build_recipe_scheduler

log = logging.getLogger(__name__)

# model.test: the test-time settings of validation (a checkpoint records them: models.checkpoint.TEST_SETTINGS)
TEST_KEYS = ("flip", "flip_shift", "rescore", "score_threshold", "oks_nms", "nms_threshold")
NONFINITE_LOSS = ("stop", "skip")


class NonFiniteLossError(UserFacingError, FloatingPointError):
    """Training stopped on a NaN/Inf loss (``nonfinite_loss="stop"``)."""


def _settings(group: str, given: Any, takes) -> dict:
    """``model.<group>`` as plain Python (so hyper-parameters load with weights_only=True) with exactly
    the settings ``takes`` (a tuple, or a callable's keyword-only or else all parameters)."""
    if callable(takes):
        params = inspect.signature(takes).parameters.values()
        takes = [p.name for p in params if p.kind is p.KEYWORD_ONLY] or [p.name for p in params]
    given = OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else dict(given or {})
    wrong = [f"{label} keys {sorted(keys)}" for label, keys in
             (("unknown", set(given) - set(takes)), ("missing", set(takes) - set(given))) if keys]
    if wrong:
        raise ValueError(f"model.{group}: {', '.join(wrong)}; expected {sorted(takes)} "
                         "(conf/model/rsn18.yaml sets each)")
    return given


class RSNLitModule(pl.LightningModule):
    # no FLOP count for Lightning's ThroughputMonitor: it logs images/s and batches/s
    flops_per_batch = None

    def __init__(self, net: nn.Module, optimizer: dict, scheduler: dict, loss: dict, test: dict,
                 output_dir: str | None, compile: bool, channels_last: bool, nonfinite_loss: str,
                 codec: HeatmapCodec | None = None):
        super().__init__()
        if nonfinite_loss not in NONFINITE_LOSS:
            raise ValueError(f"nonfinite_loss must be one of {NONFINITE_LOSS}, got {nonfinite_loss!r}")
        # a NaN/Inf loss: "stop" saves last.ckpt (weights from before the step) and stops with an error;
        # "skip" leaves the step out (no update) and counts it
        self.nonfinite_loss = nonfinite_loss
        # on the device, so the training step never waits for its loss: how many steps had a non-finite loss,
        # the first of them, and whether one is in the current gradient-accumulation window; the host reads
        # them every trainer.log_every_n_steps steps (_check_nonfinite)
        self.register_buffer("_nonfinite_count", torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("_first_nonfinite_step", torch.full((), -1, dtype=torch.int64), persistent=False)
        self.register_buffer("_window_nonfinite", torch.zeros((), dtype=torch.bool), persistent=False)
        self._nonfinite_reported = 0
        self.net = net
        # the run's one codec (rsn-train gives the DataModule the same object); None: the DataModule's
        self._codec = codec
        self.optimizer_cfg = _settings("optimizer", optimizer, build_optimizer)
        self.scheduler_cfg = _settings("scheduler", scheduler, build_recipe_scheduler)
        self.loss_cfg = _settings("loss", loss, RSNLoss)
        self.test_cfg = _settings("test", test, TEST_KEYS)
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

    # ------------------------------------------------------------------ set-up
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

    @property
    def _datamodule(self):
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    @property
    def codec(self) -> HeatmapCodec:
        codec = self._codec or getattr(self._datamodule, "codec", None)
        if codec is None:
            raise ValueError("RSNLitModule has no codec: pass codec=HeatmapCodec(...), or train with a DataModule "
                             "that has one")
        return codec

    @property
    def keypoint_spec(self) -> KeypointSpec:
        return getattr(self._datamodule, "keypoint_spec", None) or COCO_KEYPOINTS

    @property
    def normalization(self) -> InputNormalization:
        return getattr(self._datamodule, "normalization", None) or InputNormalization()

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

    # ------------------------------------------------------------------ validation
    def test_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """(final heatmaps with the configured flip test, every unit's heatmaps of the plain input).

        One pass of ``forward_all`` gives both the loss's unit heatmaps and the plain half of the flip
        test (``forward`` is its last unit), so validation runs the network twice per batch, not three
        times. The flip test is the authors': average with the mirrored input's heatmaps, joints
        swapped back, no shift."""
        from rsn_lightning.models.tta import flip_heatmaps

        outputs = self._outputs_all(images)
        heatmaps = outputs[-1][-1]
        if self.test_cfg["flip"]:
            mirrored = self._outputs_all(images.flip(-1))[-1][-1]
            flipped = flip_heatmaps(mirrored, self.keypoint_spec.flip_index, shift=self.test_cfg["flip_shift"])
            heatmaps = (heatmaps + flipped) * 0.5
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
        from rsn_lightning.evaluation.validation import coco_validation, mpii_validation

        dm, test = self._datamodule, self.test_cfg
        if getattr(dm, "dataset_kind", "coco") == "mpii":
            names = [dm.val_dataset.records[i]["image_name"] for i in preds["index"]]
            stats = mpii_validation(preds, dm.val_dataset.pckh_ground_truth(preds["index"]), names,
                                    test["rescore"], test["score_threshold"], results_path=path)
        else:
            stats = coco_validation(preds, dm.val_ann_file, self.keypoint_spec.sigmas, test["rescore"],
                                    test["score_threshold"], test["oks_nms"], test["nms_threshold"],
                                    results_path=path)
        log.info("validation: %s (predictions in %s)",
                 ", ".join(f"{k} {stats[k]:.4f}" for k in ("AP", "PCKh") if k in stats), path)
        return {k: float(v) for k, v in stats.items()}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        trainer = self.trainer
        per_device = int(getattr(self._datamodule, "batch_size", 32))
        total_batch = per_device * trainer.world_size * int(trainer.accumulate_grad_batches)
        optimizer = build_optimizer(self.parameters(), total_batch, **self.optimizer_cfg)
        total = int(trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, int(trainer.max_epochs or 1)))
        scheduler = build_recipe_scheduler(optimizer, total, steps_per_epoch, **self.scheduler_cfg)
        log.info("optimizer %s lr %.3g (model.optimizer.lr %.3g, total batch %d), %d steps",
                 self.optimizer_cfg["name"], optimizer.param_groups[0]["lr"], self.optimizer_cfg["lr"],
                 total_batch, total)
        # "name": the key LearningRateMonitor logs the rate under
        schedule = {"scheduler": scheduler, "interval": "step", "name": "train/lr"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what load_model needs to rebuild the bare network without this class or Hydra, and the codec and
        # test-time settings, so rsn-predict, rsn-eval and rsn-export crop and decode as validation did
        checkpoint.update(checkpoint_metadata(self.net, self.normalization, self.keypoint_spec.name,
                                              self.codec, self.test_settings()))
        checkpoint["rng_states"] = rng_states()
        # layout-free weights: a channels-last network's 4-D tensors are saved in the default layout
        state = checkpoint.get("state_dict")
        if state is not None:
            checkpoint["state_dict"] = {k: v.contiguous() if isinstance(v, torch.Tensor) else v
                                        for k, v in state.items()}

    def test_settings(self) -> dict:
        """The test-time settings a checkpoint records (``models.checkpoint.TEST_SETTINGS``): the box
        extension is the DataModule's (``data.augment``), the rest this module's."""
        augment = getattr(self._datamodule, "augment", None)
        box = ([float(augment.test_x_ext), float(augment.test_y_ext)] if augment is not None
               else authors_test_settings(self.keypoint_spec.name)["box_extension"])
        return {k: box if k == "box_extension" else self.test_cfg[k] for k in TEST_SETTINGS}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # a resumed run draws the same shuffles and augmentations as the run that was never stopped:
        # the data's own RNGs are restored by the DataModule; these are the global ones that user code
        # and third-party augmentations draw from
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
