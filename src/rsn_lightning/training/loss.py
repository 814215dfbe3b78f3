"""The RSN training loss, as the authors define it (``lib/utils/loss.py`` and ``_calculate_loss``).

Per stage, units 1-3 (coarse) get a plain L2 loss against targets that keep only *visible* joints
(v > 1: labelled-but-occluded joints are pushed towards an empty map), weighted 1/4; unit 4 (finest)
gets L2 with online hard keypoint mining: the per-joint L2 of labelled joints (v > 0), the top-k
joints per sample averaged. All stages are summed. Heatmaps are on the 0-255 scale of the targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsn_lightning.codec import unit_target_level


def l2_visible_loss(pred: torch.Tensor, target: torch.Tensor, visibility: torch.Tensor,
                    min_visibility: float = 1.0) -> torch.Tensor:
    """Mean squared error over all joints and pixels; joints with visibility <= min_visibility get a zero
    target (the authors' ``JointsL2Loss(has_ohkm=False)``, thresh1=1). pred/target [N,K,H,W], visibility [N,K]."""
    keep = (visibility > min_visibility).to(target.dtype)[..., None, None]
    return ((pred - target * keep) ** 2).mean()


def ohkm_loss(pred: torch.Tensor, target: torch.Tensor, visibility: torch.Tensor, topk: int = 8,
              min_visibility: float = 0.0) -> torch.Tensor:
    """Online hard keypoint mining: per-joint MSE, joints with visibility <= min_visibility zeroed, mean of
    the top-k joints per sample, then mean over the batch (the authors' ``JointsL2Loss(has_ohkm=True)``)."""
    n, k = pred.shape[:2]
    if topk > k:
        raise ValueError(f"OHKM top-k={topk} is larger than the number of keypoints ({k})")
    per_joint = ((pred - target) ** 2).reshape(n, k, -1).mean(dim=2)
    per_joint = per_joint * (visibility > min_visibility).to(per_joint.dtype)
    return per_joint.topk(topk, dim=1, sorted=False).values.mean(dim=1).mean()


class RSNLoss(nn.Module):
    """Sum over stages and units of the authors' per-unit losses; returns (total, {name: value})."""

    def __init__(self, ohkm: bool = True, topk: int = 8, coarse_to_fine: bool = True,
                 unit_weights: Sequence[float] = (0.25, 0.25, 0.25, 1.0),
                 stage_weights: Sequence[float] | None = None):
        super().__init__()
        self.ohkm = ohkm
        self.topk = topk
        self.coarse_to_fine = coarse_to_fine
        self.unit_weights = tuple(float(w) for w in unit_weights)
        self.stage_weights = None if stage_weights is None else tuple(float(w) for w in stage_weights)

    def forward(self, outputs: Sequence[Sequence[torch.Tensor]], targets: torch.Tensor,
                visibility: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """outputs: per stage, per unit [N,K,h,w]; targets [N,L,K,h,w]; visibility [N,K] (0/1/2,
        0 for joints outside the crop)."""
        num_stages, num_levels = len(outputs), targets.shape[1]
        if self.stage_weights is not None and len(self.stage_weights) != num_stages:
            raise ValueError(f"{len(self.stage_weights)} stage weights for {num_stages} stages")
        visibility = visibility.to(targets.dtype)
        total = targets.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for s, units in enumerate(outputs):
            if len(units) != len(self.unit_weights):
                raise ValueError(f"stage {s} has {len(units)} units, loss expects {len(self.unit_weights)}")
            stage_w = 1.0 if self.stage_weights is None else self.stage_weights[s]
            for j, pred in enumerate(units):
                level = unit_target_level(s, j, num_stages, num_levels, self.coarse_to_fine)
                target = targets[:, level]
                last_unit = j == len(units) - 1
                if last_unit and self.ohkm:
                    value = ohkm_loss(pred.float(), target, visibility, self.topk)
                else:
                    value = l2_visible_loss(pred.float(), target, visibility)
                parts[f"stage{s}_unit{j}"] = value.detach()
                total = total + stage_w * self.unit_weights[j] * value
        return total, parts
