"""The RSN decoder (the global net of MSPN/RSN): four upsample units, coarse to fine.

Each unit projects its encoder feature to ``channels`` (lateral 1x1 conv-BN), adds the upsampled
and projected output of the coarser unit, and predicts K heatmaps from the sum (1x1 conv-BN-ReLU,
3x3 conv-BN) which are resized to the finest (1/4) resolution. In a non-final stage of a multi-stage
RSN each unit also emits two skip features for the next stage's encoder (one from its encoder
input, one from its own output), and the finest unit a ``cross_channels``-wide feature that becomes
the next stage's input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsn_lightning.models.layers import ConvBNAct, maybe_checkpoint


class UpsampleUnit(nn.Module):
    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_keypoints: int,
        has_up: bool,
        gen_skip: bool = False,
        cross_channels: int | None = None,
        conv_bias: bool = False,
    ):
        super().__init__()
        self.lateral = ConvBNAct(in_channels, channels, 1, act=False, bias=conv_bias)
        self.up_conv = ConvBNAct(channels, channels, 1, act=False, bias=conv_bias) if has_up else None
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Sequential(
            ConvBNAct(channels, channels, 1, bias=conv_bias),
            ConvBNAct(channels, num_keypoints, 3, act=False, bias=conv_bias),
        )
        self.skip_enc = self.skip_dec = None
        if gen_skip:
            self.skip_enc = ConvBNAct(in_channels, in_channels, 1, bias=conv_bias)
            self.skip_dec = ConvBNAct(channels, in_channels, 1, bias=conv_bias)
        self.cross_conv = ConvBNAct(channels, cross_channels, 1, bias=conv_bias) if cross_channels else None

    def forward(self, x: torch.Tensor, up: torch.Tensor | None):
        out = self.lateral(x)
        if self.up_conv is not None:
            # align_corners=True as the authors and mmpose upsample
            up = F.interpolate(up, size=out.shape[-2:], mode="bilinear", align_corners=True)
            out = out + self.up_conv(up)
        out = self.act(out)
        heatmap = self.head(out)
        skip_enc = self.skip_enc(x) if self.skip_enc is not None else None
        skip_dec = self.skip_dec(out) if self.skip_dec is not None else None
        cross = self.cross_conv(out) if self.cross_conv is not None else None
        return out, heatmap, skip_enc, skip_dec, cross


class Decoder(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        num_keypoints: int,
        gen_skip: bool = False,
        cross_channels: int | None = None,
        conv_bias: bool = False,
        efficient: bool = False,
    ):
        """``in_channels``: the encoder's layer widths, fine -> coarse (as the encoder returns them)."""
        super().__init__()
        self.efficient = efficient
        coarse_to_fine = list(in_channels)[::-1]
        n = len(coarse_to_fine)
        self.units = nn.ModuleList(
            UpsampleUnit(
                c,
                channels,
                num_keypoints,
                has_up=i > 0,
                gen_skip=gen_skip,
                cross_channels=cross_channels if i == n - 1 else None,
                conv_bias=conv_bias,
            )
            for i, c in enumerate(coarse_to_fine)
        )

    def forward(self, feats: Sequence[torch.Tensor]):
        """``feats`` fine -> coarse. Returns (heatmaps coarse -> fine at the finest feature's size,
        skips for the next stage fine -> coarse as two lists or None, cross feature or None)."""
        up = None
        heatmaps, skips_enc, skips_dec, cross = [], [], [], None
        size = feats[0].shape[-2:]
        for unit, x in zip(self.units, reversed(feats)):
            up, hm, s_enc, s_dec, c = maybe_checkpoint(unit, x, up, enabled=self.efficient)
            if hm.shape[-2:] != size:
                hm = F.interpolate(hm, size=size, mode="bilinear", align_corners=True)
            heatmaps.append(hm)
            skips_enc.append(s_enc)
            skips_dec.append(s_dec)
            if c is not None:
                cross = c
        if skips_enc[0] is None:
            return heatmaps, None, cross
        return heatmaps, (skips_enc[::-1], skips_dec[::-1]), cross
