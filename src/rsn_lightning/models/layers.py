"""Small layers shared by the RSN building blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rsn_lightning.models.batchnorm import BatchNorm2d


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> optional ReLU.

    The sub-module names ``conv`` and ``bn`` are those of both the authors' ``conv_bn_relu`` and
    mmcv's ``ConvModule``, so converted checkpoints only need their prefixes renamed.
    ``bias`` exists because the authors' convolutions carry one (redundant before BN, but their
    checkpoints hold trained values for it); mmpose's and ours do not.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bias,
        )
        self.bn = BatchNorm2d(out_channels)
        if act:
            self.act = nn.ReLU(inplace=True)


def maybe_checkpoint(fn: Callable[..., torch.Tensor], *args: torch.Tensor, enabled: bool):
    """Run ``fn`` under activation checkpointing when training with ``enabled`` (the authors' ``efficient``).

    Recomputing in backward trades ~30% more compute for not storing the block's activations;
    in eval or under no_grad there is nothing to save, so it runs plainly.
    """
    if enabled and torch.is_grad_enabled() and any(a.requires_grad for a in args if a is not None):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs, BN at identity, zero conv biases.

    The authors apply exactly this to their encoder only (``ResNet_downsample_module`` in
    caiyuanhao1998/RSN exps/*/network.py); their stem, decoder and PRM keep PyTorch's default init.
    mmpose applies Kaiming to every conv of its RSN backbone (stem, encoder and decoder). ``RSN(init=...)``
    chooses which modules get it.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
