"""The RSN LightningModule: thin glue between the network, the loss, the optimiser and the evaluation.

Everything with a number in it lives in a pure module (``loss``, ``schedule``, ``evaluation``); this
class only wires them to Lightning: steps, logging, DDP gathering, checkpoint metadata.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.config_checks import UserFacingError
from rsn_lightning.geometry import apply_affine, crop_affine
from rsn_lightning.keypoints import COCO_KEYPOINTS, KeypointSpec
from rsn_lightning.models.checkpoint import TEST_SETTINGS, authors_test_settings
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.training.loss import RSNLoss
from rsn_lightning.training.schedule import build_scheduler, scaled_lr

log = logging.getLogger(__name__)

DEFAULT_OPTIMIZER = {"name": "adam", "lr": 5e-4, "weight_decay": 1e-5, "betas": (0.9, 0.999),
                     "scale_lr": True, "reference_batch": 32}
DEFAULT_SCHEDULER = {"name": "linear", "warmup_steps": 2400, "warmup_epochs": None, "warmup_factor": 0.1,
                     "milestones": (), "milestone_epochs": (), "gamma": 0.1}
DEFAULT_LOSS = {"ohkm": True, "topk": 8, "coarse_to_fine": True, "unit_weights": (0.25, 0.25, 0.25, 1.0),
                "stage_weights": None}
DEFAULT_TEST = {"flip": True, "flip_shift": False, "rescore": "authors", "score_threshold": 0.2, "oks_nms": None,
                "nms_threshold": None, "num_vis_images": 8}


NONFINITE_LOSS = ("stop", "skip")


class NonFiniteLossError(UserFacingError, FloatingPointError):
    """Training stopped on a NaN/Inf loss (``nonfinite_loss="stop"``)."""


def _plain(value: Any) -> Any:
    """Hydra DictConfig/ListConfig -> plain Python, so hyper-parameters load with weights_only=True."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(value, tuple):
        return list(value)
    return value


def _merged(defaults: dict, given: dict | None) -> dict:
    given = _plain(given) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected some of {sorted(defaults)}")
    return {**{k: _plain(v) for k, v in defaults.items()}, **given}


class RSNLitModule(pl.LightningModule):
    def __init__(self, net: nn.Module, codec: HeatmapCodec | None = None, optimizer: dict | None = None,
                 scheduler: dict | None = None, loss: dict | None = None, test: dict | None = None,
                 output_dir: str | None = None, compile: bool = False, channels_last: bool = True,
                 nonfinite_loss: str = "stop"):
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
        self.optimizer_cfg = _merged(DEFAULT_OPTIMIZER, optimizer)
        self.scheduler_cfg = _merged(DEFAULT_SCHEDULER, scheduler)
        self.loss_cfg = _merged(DEFAULT_LOSS, loss)
        self.test_cfg = _merged(DEFAULT_TEST, test)
        self.output_dir = output_dir
        self.save_hyperparameters(
            {"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg, "loss": self.loss_cfg,
             "test": self.test_cfg, "arch": self._arch(), "compile": compile, "channels_last": channels_last},
            logger=False,
        )
        self.criterion = RSNLoss(**self.loss_cfg)
        self.compile = compile
        self.channels_last = channels_last
        self._val_outputs: list[dict[str, np.ndarray]] = []
        self._vis: dict[str, np.ndarray] | None = None
        self._step_start: float | None = None
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
        dm = self._datamodule
        return getattr(dm, "keypoint_spec", None) or COCO_KEYPOINTS

    @property
    def normalization(self) -> InputNormalization:
        dm = self._datamodule
        norm = getattr(dm, "normalization", None)
        if isinstance(norm, InputNormalization):
            return norm
        return InputNormalization.from_dict(norm) if isinstance(norm, dict) else InputNormalization()

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

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._step_start is None:
            return
        elapsed = time.perf_counter() - self._step_start
        images = batch["image"].shape[0] * self.trainer.world_size
        self.log("train/images_per_sec", images / max(elapsed, 1e-9), batch_size=batch["image"].shape[0])
        opt = self.optimizers(use_pl_optimizer=False)
        self.log("train/lr", opt.param_groups[0]["lr"], batch_size=batch["image"].shape[0])

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []
        self._vis = None

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

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        images = batch["image"]
        heatmaps, outputs = self.test_outputs(images)
        if "heatmaps" in batch and batch["heatmaps"].numel() > 0:
            total, _ = self.criterion(outputs, batch["heatmaps"], self._visibility(batch))
            self.log("val/loss", total, batch_size=images.shape[0], sync_dist=True)
        size = (images.shape[-1], images.shape[-2])
        center = batch["center"].cpu().numpy()
        scale = batch["scale"].cpu().numpy()
        coords, scores = self.codec.decode(heatmaps.float().cpu().numpy(), center, scale)
        self._val_outputs.append({
            "coords": coords.astype(np.float32),
            "scores": scores.astype(np.float32),
            "box_score": batch["box_score"].float().cpu().numpy().reshape(-1),
            "image_id": batch["image_id"].cpu().numpy().reshape(-1),
            "area": batch["area"].float().cpu().numpy().reshape(-1),
            "index": batch["index"].cpu().numpy().reshape(-1),
            "center": center, "scale": scale,
        })
        if self._vis is None and self.test_cfg["num_vis_images"] > 0:
            n = min(int(self.test_cfg["num_vis_images"]), images.shape[0])
            crops = [self.normalization.denormalize(img) for img in images[:n].float().cpu().numpy()]
            in_crop = np.stack([apply_affine(coords[i], crop_affine(center[i], scale[i], 0, size))
                                for i in range(n)])
            self._vis = {"crops": np.stack(crops), "keypoints": in_crop, "scores": scores[:n]}

    def _gather_predictions(self) -> dict[str, np.ndarray]:
        local = {k: np.concatenate([o[k] for o in self._val_outputs]) for k in self._val_outputs[0]} \
            if self._val_outputs else {}
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, local)
            parts = [g for g in gathered if g]
            local = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
        if local:
            # DistributedSampler pads the last batch with repeats: count each instance once
            _, first = np.unique(local["index"], return_index=True)
            local = {k: v[np.sort(first)] for k, v in local.items()}
        return local

    def _results_path(self, tag: str) -> Path:
        base = Path(self.output_dir) if self.output_dir else Path(self.trainer.default_root_dir)
        return base / "results" / f"{tag}_epoch{self.current_epoch:03d}.json"

    def on_validation_epoch_end(self) -> None:
        self._evaluate_epoch("val")

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._evaluate_epoch("test")

    def _evaluate_epoch(self, tag: str) -> None:
        preds = self._gather_predictions()
        if not preds or self.trainer.sanity_checking:
            return
        dm = self._datamodule
        kind = getattr(dm, "dataset_kind", "coco")
        if kind == "mpii":
            stats = self._evaluate_mpii(dm, preds)
        else:
            stats = self._evaluate_coco(dm, preds, tag)
        self.last_val_stats = stats
        self.log_dict({f"{tag}/{k}": float(v) for k, v in stats.items()}, sync_dist=False, rank_zero_only=False)
        if self.trainer.is_global_zero:
            self._log_pictures(tag)

    def _evaluate_coco(self, dm, preds: dict, tag: str) -> dict[str, float]:
        from rsn_lightning.evaluation.coco_eval import CocoKeypointEvaluator

        spec = self.keypoint_spec
        evaluator = CocoKeypointEvaluator(dm.val_ann_file, sigmas=spec.sigmas,
                                          rescore=self.test_cfg["rescore"],
                                          score_threshold=self.test_cfg["score_threshold"],
                                          oks_nms=self.test_cfg["oks_nms"],
                                          nms_threshold=self.test_cfg["nms_threshold"])
        path = self._results_path(tag) if self.trainer.is_global_zero else None
        stats = evaluator.evaluate_arrays(
            preds["coords"], preds["scores"], preds["box_score"], preds["image_id"],
            results_path=path, sample_index=preds["index"], areas=np.prod(preds["scale"], axis=1),
        )
        if path is not None:
            log.info("%s: COCO keypoint AP %.4f (results in %s)", tag, stats["AP"], path)
        flat = {k: v for k, v in stats.items() if np.isscalar(v)}
        for name, figures in (stats.get("per_keypoint") or {}).items():
            if name == "count":
                continue
            if isinstance(figures, dict):
                flat.update({f"per_keypoint/{name}/{k}": v for k, v in figures.items() if np.isscalar(v)})
            elif np.isscalar(figures):
                flat[f"per_keypoint/{name}"] = figures
        return flat

    def _evaluate_mpii(self, dm, preds: dict) -> dict[str, float]:
        from rsn_lightning.evaluation.pckh import pckh_table

        gt = dm.val_dataset.pckh_ground_truth(preds["index"])
        table = pckh_table(preds["coords"], gt["joints"], gt["visible"], gt["head_size"])
        # the headline numbers under the names the configs monitor (percent, as the MPII tables)
        table["PCKh"] = table.pop("Mean")
        if "Mean@0.1" in table:
            table["PCKh@0.1"] = table.pop("Mean@0.1")
        return table

    def _log_pictures(self, tag: str) -> None:
        if self._vis is None:
            return
        from rsn_lightning.inference.visualize import draw_pose

        tiles = [draw_pose(c, k[None], s[None], self.keypoint_spec)
                 for c, k, s in zip(self._vis["crops"], self._vis["keypoints"], self._vis["scores"])]
        grid = np.concatenate(tiles, axis=1)
        base = Path(self.output_dir) if self.output_dir else Path(self.trainer.default_root_dir)
        out = base / "pictures" / f"{tag}_epoch{self.current_epoch:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        import cv2

        cv2.imwrite(str(out), grid)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # wandb
                logger.log_image(key=f"{tag}/predictions", images=[grid[..., ::-1]], step=self.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):  # tensorboard
                logger.experiment.add_image(f"{tag}/predictions", grid[..., ::-1], self.global_step,
                                            dataformats="HWC")

    # ------------------------------------------------------------------ optimisation
    def total_batch_size(self) -> int:
        dm = self._datamodule
        per_device = int(getattr(dm, "batch_size", 32)) if dm is not None else 32
        trainer = self.trainer
        return per_device * trainer.world_size * int(trainer.accumulate_grad_batches)

    def configure_optimizers(self):
        cfg = self.optimizer_cfg
        lr = float(cfg["lr"])
        if cfg["scale_lr"]:
            lr = scaled_lr(lr, self.total_batch_size(), int(cfg["reference_batch"]))
        if cfg["name"] == "adam":
            opt = torch.optim.Adam(self.parameters(), lr=lr, betas=tuple(cfg["betas"]),
                                   weight_decay=float(cfg["weight_decay"]))
        elif cfg["name"] == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=lr, betas=tuple(cfg["betas"]),
                                    weight_decay=float(cfg["weight_decay"]))
        else:
            raise ValueError(f"unknown optimizer '{cfg['name']}': expected adam or adamw")
        sched = self.scheduler_cfg
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, int(self.trainer.max_epochs or 1)))
        warmup = sched["warmup_steps"]
        if sched["warmup_epochs"] is not None:
            warmup = int(round(float(sched["warmup_epochs"]) * steps_per_epoch))
        milestones = list(sched["milestones"]) or [int(e * steps_per_epoch) for e in sched["milestone_epochs"]]
        scheduler = build_scheduler(opt, sched["name"], total, int(min(warmup, total)), sched["warmup_factor"],
                                    milestones, sched["gamma"])
        log.info("optimizer %s lr %.3g (base %.3g x total batch %d / %d), %d steps, %d warm-up",
                 cfg["name"], lr, cfg["lr"], self.total_batch_size(), cfg["reference_batch"], total, warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what load_model needs to rebuild the bare network without this class or Hydra
        checkpoint["arch"] = self._arch()
        checkpoint["normalization"] = self.normalization.to_dict()
        checkpoint["keypoints"] = self.keypoint_spec.name
        # its codec and test-time settings: rsn-predict, rsn-eval and rsn-export crop and decode the same way
        checkpoint["codec"] = self.codec.to_dict()
        checkpoint["test"] = self.test_settings()
        checkpoint["rng_states"] = _rng_states()
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
        return {k: box if k == "box_extension" else _plain(self.test_cfg[k]) for k in TEST_SETTINGS}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # a resumed run draws the same shuffles and augmentations as the run that was never stopped
        # the data's own RNGs are restored by the DataModule; these are the global ones that user code
        # and third-party augmentations draw from
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])


def _rng_states() -> dict:
    import random

    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the legacy global state
    return {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "python": random.getstate()}


def _set_rng_states(states: dict) -> None:
    import random

    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
