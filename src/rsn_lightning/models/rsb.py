"""Residual Steps Block (RSB): the RSN's building block (Cai et al., ECCV 2020, Fig. 2).

A 1x1 convolution (carrying the block's stride) widens the input into ``num_branches`` branches of
``branch_channels`` each. Branch ``i`` (0-based) is ``i + 1`` 3x3 conv-BN-ReLU steps; every step but
the last of the previous branch's also feeds the step at the same depth of the next branch
(intra-level aggregation), so branch ``i`` sees receptive fields of 3x3 up to (2i+3)x(2i+3) fused
densely. The branch ends are concatenated, projected back with a 1x1 conv-BN and added to the
(projected, where the shape changes) input.
"""

from __future__ import annotations

import torch
from torch import nn

from rsn_lightning.models.layers import ConvBNAct


def branch_width(in_channels: int, branch_ratio: float) -> int:
    """Width of one RSB branch: the authors' ``in_channels * 26 // 64`` for ``branch_ratio=26/64``.

    It is a fraction of the block's *input* width (not of its output), so the first block of a
    strided layer is as narrow as the previous layer's blocks. A tiny epsilon keeps ratios that are
    not exact binary fractions from flooring one short.
    """
    width = int(in_channels * branch_ratio + 1e-6)
    if width < 1:
        raise ValueError(
            f"branch_ratio={branch_ratio} leaves no channels for a block of {in_channels} inputs"
        )
    return width


class ResidualStepsBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        num_branches: int = 4,
        branch_ratio: float = 26 / 64,
        conv_bias: bool = False,
    ):
        super().__init__()
        if num_branches < 1:
            raise ValueError(f"num_branches must be >= 1, got {num_branches}")
        self.num_branches = num_branches
        self.branch_channels = branch_width(in_channels, branch_ratio)
        width = num_branches * self.branch_channels
        self.conv_in = ConvBNAct(in_channels, width, 1, stride=stride, bias=conv_bias)
        # steps[i][j]: step j of branch i; branch i has i + 1 steps
        self.steps = nn.ModuleList(
            nn.ModuleList(
                ConvBNAct(self.branch_channels, self.branch_channels, 3, bias=conv_bias) for _ in range(i + 1)
            )
            for i in range(num_branches)
        )
        self.conv_out = ConvBNAct(width, out_channels, 1, act=False, bias=conv_bias)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvBNAct(in_channels, out_channels, 1, stride=stride, act=False, bias=conv_bias)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = torch.split(self.conv_in(x), self.branch_channels, dim=1)
        prev: list[torch.Tensor] = []  # the previous branch's step outputs
        ends = []
        for i, branch in enumerate(self.steps):
            outs = []
            h = splits[i]
            for j, step in enumerate(branch):
                if j < len(prev):
                    h = h + prev[j]
                h = step(h)
                outs.append(h)
            ends.append(h)
            prev = outs
        out = self.conv_out(torch.cat(ends, dim=1))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(out + identity)
