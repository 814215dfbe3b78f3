"""The RSN encoder: a ResNet-style stem and four layers of Residual Steps Blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsn_lightning.models.layers import ConvBNAct, maybe_checkpoint
from rsn_lightning.models.rsb import ResidualStepsBlock


class Stem(nn.Module):
    """7x7/2 conv-BN-ReLU and a 3x3/2 max-pool: the input at 1/4 resolution. Shared by all stages."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, conv_bias: bool = False):
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 7, stride=2, bias=conv_bias)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class Encoder(nn.Module):
    """Four layers of RSBs at strides 4, 8, 16, 32; returns their outputs fine -> coarse.

    ``skips`` (from the previous stage of a multi-stage RSN: per layer, fine -> coarse, the tensors
    to add) are added to each layer's output before it feeds the next layer, as the authors'
    cross-stage aggregation does.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        blocks: Sequence[int],
        num_branches: int = 4,
        branch_ratio: float = 26 / 64,
        conv_bias: bool = False,
        efficient: bool = False,
    ):
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError(f"{len(channels)} layer widths for {len(blocks)} layers")
        self.efficient = efficient
        self.channels = tuple(channels)
        layers = []
        for i, (width, n) in enumerate(zip(channels, blocks)):
            if n < 1:
                raise ValueError(f"every layer needs at least one block, got blocks={list(blocks)}")
            stride = 1 if i == 0 else 2
            layer = [ResidualStepsBlock(in_channels, width, stride, num_branches, branch_ratio, conv_bias)]
            layer += [
                ResidualStepsBlock(width, width, 1, num_branches, branch_ratio, conv_bias)
                for _ in range(n - 1)
            ]
            layers.append(nn.Sequential(*layer))
            in_channels = width
        self.layers = nn.ModuleList(layers)

    def forward(
        self, x: torch.Tensor, skips: Sequence[Sequence[torch.Tensor]] | None = None
    ) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.layers):
            for block in layer:
                x = maybe_checkpoint(block, x, enabled=self.efficient)
            if skips is not None:
                for skip in skips[i]:
                    x = x + skip
            feats.append(x)
        return feats
