"""Parameter and multiply-add counts of a network, as papers report "GFLOPs" (1 MAC counted once).

Counted by PyTorch's ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass of one image,
so the number follows the code rather than a formula. It counts the convolutions and matrix products
(2 FLOPs per multiply-add; halved here); batch-norm, ReLU, pooling, additions and interpolation are left
out, as in the paper's and mmpose's (mmcv ``get_model_complexity_info``) counts, where they add well
under 1%.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def count_macs(net: nn.Module, input_size: tuple[int, int] = (192, 256)) -> int:
    """Multiply-adds of one forward pass on one image of ``input_size`` = (width, height)."""
    was_training = net.training
    counter = FlopCounterMode(display=False)
    try:
        net.eval()
        w, h = input_size
        param = next(net.parameters())
        with counter:
            net(torch.zeros(1, 3, h, w, dtype=param.dtype, device=param.device))
    finally:
        net.train(was_training)
    return counter.get_total_flops() // 2


def complexity(net: nn.Module, input_size: tuple[int, int] = (192, 256)) -> dict:
    """``{"params": int, "macs": int, "gmacs": float, "mparams": float}``."""
    params, macs = count_params(net), count_macs(net, input_size)
    return {"params": params, "macs": macs, "mparams": params / 1e6, "gmacs": macs / 1e9}
