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

from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.config_checks import UserFacingError
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
        self.nonfinite_steps = 0
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

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self._outputs_all(batch["image"])
        total, parts = self.criterion(outputs, batch["heatmaps"], self._visibility(batch))
        # every rank takes the same decision, so a skip never leaves DDP ranks waiting for each other
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(total)), all=True):
            return self._on_nonfinite_loss(batch_idx)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        return total

    def _on_nonfinite_loss(self, batch_idx: int) -> None:
        self.nonfinite_steps += 1
        where = f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        if self.nonfinite_loss == "skip":
            log.warning("NaN/Inf loss at %s: step skipped (%d so far; model.nonfinite_loss=skip)", where,
                        self.nonfinite_steps)
            self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=1)
            return None
        saved = "no checkpoint folder configured"
        callback = self.trainer.checkpoint_callback
        if callback is not None and callback.dirpath:
            path = Path(callback.dirpath) / "last.ckpt"
            # the weights are still those before this step: a usable checkpoint to resume or inspect
            self.trainer.save_checkpoint(path)
            saved = f"weights before this step saved to {path}"
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
        from rsn_lightning.evaluation.flip import flip_heatmaps

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
        from rsn_lightning.evaluation.validation import coco_validation, mpii_validation

        if self.trainer.sanity_checking:
            return
        preds = self.predictions.compute()  # every rank's, each sample once
        if not preds:
            return
        base = Path(self.output_dir) if self.output_dir else Path(self.trainer.default_root_dir)
        path = base / "results" / f"val_epoch{self.current_epoch:03d}.json" if self.trainer.is_global_zero else None
        dm, test = self._datamodule, self.test_cfg
        if getattr(dm, "dataset_kind", "coco") == "mpii":
            names = [dm.val_dataset.records[i]["image_name"] for i in preds["index"]]
            stats = mpii_validation(preds, dm.val_dataset.pckh_ground_truth(preds["index"]), names,
                                    test["rescore"], test["score_threshold"], results_path=path)
        else:
            stats = coco_validation(preds, dm.val_ann_file, self.keypoint_spec.sigmas, test["rescore"],
                                    test["score_threshold"], test["oks_nms"], test["nms_threshold"],
                                    results_path=path)
        if path is not None:
            log.info("validation: %s (predictions in %s)",
                     ", ".join(f"{k} {stats[k]:.4f}" for k in ("AP", "PCKh") if k in stats), path)
        self.last_val_stats = stats
        self.log_dict({f"val/{k}": float(v) for k, v in stats.items()}, sync_dist=False, rank_zero_only=False)

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
