"""Pose Refine Machine (PRM, Cai et al., ECCV 2020, Sec. 3.3) on the final heatmaps.

After a 3x3 conv-BN-ReLU, the features ``f`` are reweighted by a channel attention (global average
pool, two 1x1 conv-BN-ReLU, sigmoid: one weight per keypoint) times a spatial attention (1x1
conv-BN-ReLU, 9x9 depthwise conv-BN-ReLU, sigmoid: one map per keypoint): ``f * (1 + c * s)``.
This is the authors' PRM class (their 4xRSN-18 network.py). mmpose's variant differs (Linear+BN1d
channel path, a single-channel spatial map) and is not what this module computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsn_lightning.models.layers import ConvBNAct


class PoseRefineMachine(nn.Module):
    def __init__(self, channels: int, conv_bias: bool = False):
        super().__init__()
        self.conv = ConvBNAct(channels, channels, 3, bias=conv_bias)
        self.channel_att = nn.Sequential(
            ConvBNAct(channels, channels, 1, bias=conv_bias),
            ConvBNAct(channels, channels, 1, bias=conv_bias),
        )
        self.spatial_att = nn.Sequential(
            ConvBNAct(channels, channels, 1, bias=conv_bias),
            ConvBNAct(channels, channels, 9, groups=channels, bias=conv_bias),
        )

    def _parts(self, x: torch.Tensor):
        f = self.conv(x)
        # BN over a [N, K, 1, 1] tensor needs a batch of at least 2 in training, as in the authors' code
        c = torch.sigmoid(self.channel_att(F.adaptive_avg_pool2d(f, 1)))
        s = torch.sigmoid(self.spatial_att(f))
        return f, c, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, c, s = self._parts(x)
        return f * (1 + c * s)

    def attention(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the PRM computes on heatmaps ``x`` [N, K, h, w], to look at: ``features`` (after the
        3x3 conv), ``channel`` [N, K, 1, 1] and ``spatial`` [N, K, h, w] attention, their product
        ``attention``, and ``output`` (equal to ``forward(x)``)."""
        f, c, s = self._parts(x)
        return {"features": f, "channel": c, "spatial": s, "attention": c * s, "output": f * (1 + c * s)}
