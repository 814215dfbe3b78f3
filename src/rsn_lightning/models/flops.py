"""Parameter and multiply-add counts of a network, as papers report "GFLOPs" (1 MAC counted once).

Counted from the convolutions and linear layers actually run on a dummy input (forward hooks), so
the number follows the code rather than a formula; batch-norm, ReLU, pooling, additions and
interpolation are left out as in the paper's and mmpose's (mmcv get_model_complexity_info) counts,
where they add well under 1%.
"""

from __future__ import annotations

import torch
from torch import nn


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def count_macs(net: nn.Module, input_size: tuple[int, int] = (192, 256)) -> int:
    """Multiply-adds of one forward pass on one image of ``input_size`` = (width, height)."""
    total = 0

    def conv_hook(m: nn.Conv2d, inputs, output):
        nonlocal total
        kh, kw = m.kernel_size
        total += output.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * m.in_features

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = net.training
    try:
        net.eval()
        w, h = input_size
        param = next(net.parameters())
        net(torch.zeros(1, 3, h, w, dtype=param.dtype, device=param.device))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return total


def complexity(net: nn.Module, input_size: tuple[int, int] = (192, 256)) -> dict:
    """``{"params": int, "macs": int, "gmacs": float, "mparams": float}``."""
    params, macs = count_params(net), count_macs(net, input_size)
    return {"params": params, "macs": macs, "mparams": params / 1e6, "gmacs": macs / 1e9}
