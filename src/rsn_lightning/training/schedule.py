"""Learning-rate schedules of the paper's recipe, as per-step multipliers of the base rate.

- ``linear``: the authors' (``lib/utils/solver.py``): linear warm-up from ``warmup_factor`` to 1 over
  ``warmup_steps``, then linear decay to 0 at ``total_steps``.
- ``multistep``: mmpose's RSN recipe: linear warm-up, then x``gamma`` at each milestone step.
- ``cosine``: warm-up then cosine to 0, a common alternative for sweeps.

The base rate follows the authors' linear scaling rule: ``lr = base_lr * total_batch / 32``, where
``total_batch`` is the per-device batch times devices times nodes times gradient accumulation
(they used 5e-4 per 32-image GPU batch).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)


def scaled_lr(base_lr: float, total_batch: int, reference_batch: int = 32) -> float:
    return base_lr * total_batch / reference_batch


def lr_multiplier(step: int, name: str, total_steps: int, warmup_steps: int = 0, warmup_factor: float = 0.1,
                  milestones: Sequence[int] = (), gamma: float = 0.1) -> float:
    if step < warmup_steps:
        return warmup_factor + (1.0 - warmup_factor) * step / warmup_steps
    if name == "linear":
        return max(0.0, 1.0 - (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if name == "multistep":
        return gamma ** sum(step >= m for m in milestones)
    if name == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "constant":
        return 1.0
    raise ValueError(f"unknown lr schedule '{name}': expected linear, multistep, cosine or constant")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_steps: int = 0,
                    warmup_factor: float = 0.1, milestones: Sequence[int] = (), gamma: float = 0.1
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR (step it every optimiser step)."""
    lr_multiplier(0, name, total_steps, warmup_steps, warmup_factor, milestones, gamma)  # validates name
    milestones = tuple(int(m) for m in milestones)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_multiplier(step, name, total_steps, warmup_steps, warmup_factor, milestones, gamma),
    )


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(params, total_batch: int, *, name: str, lr: float, weight_decay: float,
                    betas: Sequence[float], scale_lr: bool, reference_batch: int,
                    fused: bool) -> torch.optim.Optimizer:
    """``model.optimizer`` (conf/model/rsn18.yaml): ``name`` at ``lr`` per ``reference_batch`` images,
    scaled to ``total_batch`` (the authors' rule) when ``scale_lr``. ``fused``: torch's single-kernel
    implementation of the same update, where the parameters' device has one (CPU and CUDA from torch 2.4);
    elsewhere the default implementation runs."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}': expected one of {sorted(OPTIMIZERS)}")
    if scale_lr:
        lr = scaled_lr(float(lr), total_batch, int(reference_batch))
    params = list(params)
    kwargs = {"lr": float(lr), "betas": tuple(betas), "weight_decay": float(weight_decay)}
    if fused:
        try:
            return OPTIMIZERS[name](params, fused=True, **kwargs)
        except RuntimeError as e:  # a device without the fused kernel (torch checks at construction)
            log.info("model.optimizer.fused: %s; using the default implementation", e)
    return OPTIMIZERS[name](params, **kwargs)


def build_recipe_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, *,
                           name: str, warmup_steps: int, warmup_epochs: float | None, warmup_factor: float,
                           milestones: Sequence[int], milestone_epochs: Sequence[float], gamma: float
                           ) -> torch.optim.lr_scheduler.LambdaLR:
    """``model.scheduler`` (conf/model/rsn18.yaml) as a per-step schedule: ``warmup_epochs`` (when set)
    and ``milestone_epochs`` (when no ``milestones`` steps are given) are converted to steps."""
    if warmup_epochs is not None:
        warmup_steps = int(round(float(warmup_epochs) * steps_per_epoch))
    steps = list(milestones) or [int(e * steps_per_epoch) for e in milestone_epochs]
    return build_scheduler(optimizer, name, total_steps, int(min(warmup_steps, total_steps)), warmup_factor,
                           steps, gamma)


def recipe_optimization(parameters, trainer, batch_size: int, optimizer_cfg: dict, scheduler_cfg: dict) -> dict:
    """Lightning's ``configure_optimizers`` answer: the optimiser at the run's total batch (per-device
    ``batch_size`` x devices x accumulation) and the recipe's schedule, stepped every step."""
    total_batch = batch_size * trainer.world_size * int(trainer.accumulate_grad_batches)
    optimizer = build_optimizer(parameters, total_batch, **optimizer_cfg)
    total = int(trainer.estimated_stepping_batches)
    steps_per_epoch = max(1, total // max(1, int(trainer.max_epochs or 1)))
    scheduler = build_recipe_scheduler(optimizer, total, steps_per_epoch, **scheduler_cfg)
    log.info("optimizer %s lr %.3g (model.optimizer.lr %.3g, total batch %d), %d steps",
             optimizer_cfg["name"], optimizer.param_groups[0]["lr"], optimizer_cfg["lr"], total_batch, total)
    # "name": the key LearningRateMonitor logs the rate under
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"}}
