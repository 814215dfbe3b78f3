"""Inference-time batch-norm folding: every conv -> BN pair becomes one convolution.

In eval mode BN is an affine map per channel, so it folds exactly into the preceding convolution's
weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``). Every BN of RSN sits in a
``ConvBNAct`` right after its convolution, so folding them all removes one memory-bound pass over
each activation. The result is for inference only: it cannot train (no BN) and its state dict no
longer loads into an RSN.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from rsn_lightning.models.layers import ConvBNAct


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with each ``ConvBNAct``'s BN folded into its conv; ``net`` is untouched."""
    folded = copy.deepcopy(net).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return folded


def count_batchnorms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def inference_network(net: nn.Module, device=None, fold_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """The network every inference path runs (rsn-predict, rsn-eval, the Predictor API): an eval-mode copy
    with batch norm folded into the convolutions and channels-last weights, on ``device``. ``net`` is
    untouched; the copy keeps what load_model attached (codec, test_settings, ...). Its outputs equal the
    plain eval forward's within float rounding (tests/models/test_fuse.py)."""
    import torch

    out = fold_batchnorm(net) if fold_bn else copy.deepcopy(net).eval()
    if device is not None:
        out = out.to(device)
    return out.to(memory_format=torch.channels_last) if channels_last else out
