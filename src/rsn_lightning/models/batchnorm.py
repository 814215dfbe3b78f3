"""BatchNorm2d whose CPU channels-last float32 path stays fast for RSN's odd channel counts.

RSN's residual-steps branches are 26 channels wide per 64 (13, 17, 26, 52, 104 in the presets), and
PyTorch's CPU channels-last batch-norm kernels (aten/src/ATen/native/cpu/batch_norm_kernel.cpp) run
their vector loops along the channel dimension, pixel by pixel: with C not a multiple of the vector
width (16 floats with AVX-512) every pixel ends in a partial-vector remainder. Measured on this project's
2-core AVX-512 CPU (torch 2.13; ``python scripts/bench_training_step.py --parts``), the native
channels-last backward for C=13, 26 or 52 takes 14-57x as long as for the same tensor in NCHW (the
row-wise path here: 5-6x), and batch norm is 25-31% of the channels-last training step in ``python
scripts/profile_model.py`` (rsn_tiny and RSN-18).

Small tensors (at most ``_ROUND_TRIP_MAX_ELEMENTS``, RSN's low-resolution stages) are copied to NCHW for
nn.BatchNorm2d's NCHW kernel and back: two cheap copies and one native call cost less than the row-wise
path's two dozen small operations there (measured below). Larger ones take the row-wise path:
it keeps the channels-last memory and changes only how it is walked: a channels-last (N, C, H, W)
tensor is an (N*H*W, C) matrix in memory, viewed here as (N*H*W/P, P*C) rows, with the per-channel
vectors repeated P times, so every element-wise pass and every per-channel reduction runs over long
contiguous rows. Forward statistics are two-pass (the mean, then the centred sum of squares);
the backward is the closed form of batch norm's gradient. Parameters, buffers, running-stat updates and
the state dict are nn.BatchNorm2d's; every other case (GPU, NCHW, bf16, channel counts the native kernel
handles well) runs nn.BatchNorm2d itself. Equality with nn.BatchNorm2d is tested in
tests/models/test_batchnorm.py.
"""

from __future__ import annotations

import torch
from torch import nn

# Channel counts below this that are not multiples of 16 take the row-wise path (13, 17, 26, 52 in the
# presets); from 64 up the native kernel was as fast or faster in the measurements of docs/performance.md.
_ROWWISE_MAX_CHANNELS = 64
# Up to this many elements such a tensor goes through NCHW instead (BatchNorm2d.round_trip_max_elements).
# Whole rsn_tiny training steps at the quickstart's size, ``python scripts/bench_training_step.py --model
# rsn_tiny --input 96 128 --batch 32 --rounds 4`` (copies of the network interleaved in one process): this
# limit 2.3-4.4% faster than the row-wise path everywhere in three processes. Before it, a throwaway
# version of that comparison found limits of 1e5, 1.5e5 and 2e5 elements alike (+0.5-4% in five
# processes), 5e5 and no limit slower, and RSN-18 at 256x192, batch 16, unchanged (10.1 images/s).
_ROUND_TRIP_MAX_ELEMENTS = 150_000


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A channels-last (N, C, H, W) tensor as its (N*H*W/P, P*C) memory, P the largest of 64..1 dividing N*H*W."""
    n, c, h, w = x.shape
    m = n * h * w
    p = next(p for p in (64, 32, 16, 8, 4, 2, 1) if m % p == 0)
    return x.permute(0, 2, 3, 1).reshape(m // p, p * c), p


def _channel_sum(rows: torch.Tensor, p: int) -> torch.Tensor:
    return rows.sum(0).view(p, -1).sum(0)


class _RowwiseBatchNorm(torch.autograd.Function):
    """Training-mode batch norm on a channels-last float32 tensor; returns (y, mean, biased var)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        rows, p = _rows(x)
        count = rows.numel() // x.shape[1]
        mean = _channel_sum(rows, p) / count
        centred = rows - mean.repeat(p)
        var = _channel_sum(centred * centred, p) / count
        invstd = torch.rsqrt(var + eps)
        scale = weight * invstd
        # written through a view into a fresh channels-last tensor: the output must not be a view (ReLU
        # follows in place)
        y = torch.empty_like(x, memory_format=torch.channels_last)
        torch.addcmul((bias - mean * scale).repeat(p), rows, scale.repeat(p), out=_rows(y)[0])
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        x, weight, mean, invstd = ctx.saved_tensors
        grad_rows, p = _rows(grad_y.contiguous(memory_format=torch.channels_last))
        rows, _ = _rows(x)
        count = rows.numel() // x.shape[1]
        grad_bias = _channel_sum(grad_rows, p)
        grad_weight = invstd * (_channel_sum(grad_rows * rows, p) - mean * grad_bias)
        # dx = w*invstd * (g - sum(g)/M - xhat * sum(g*xhat)/M), written as g*a + x*b + c per channel
        a = weight * invstd
        k = grad_weight * invstd / count
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        grad_x_rows = _rows(grad_x)[0]
        torch.addcmul((a * (mean * k - grad_bias / count)).repeat(p), grad_rows, a.repeat(p), out=grad_x_rows)
        grad_x_rows.addcmul_(rows, (-a * k).repeat(p))
        return grad_x, grad_weight, grad_bias, None


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d with the round-trip and row-wise training paths for CPU channels-last float32 inputs
    (module docstring)."""

    round_trip_max_elements = _ROUND_TRIP_MAX_ELEMENTS

    def _native_is_slow(self, x: torch.Tensor) -> bool:
        """Whether ``x`` is a case nn.BatchNorm2d's own channels-last kernel handles slowly."""
        return (
            self.training
            and self.affine
            and self.track_running_stats
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and 0 < x.shape[1] < _ROWWISE_MAX_CHANNELS
            and x.shape[1] % 16 != 0
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
            and not torch.is_autocast_enabled("cpu")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._native_is_slow(x):
            return super().forward(x)
        if x.numel() <= self.round_trip_max_elements:
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        # (one value per channel cannot get here: a 1x1 channels-last tensor is also NCHW-contiguous, so
        # nn.BatchNorm2d raises its own error for it)
        count = x.numel() // x.shape[1]
        y, mean, var = _RowwiseBatchNorm.apply(x, self.weight, self.bias, self.eps)
        # the running statistics exactly as nn.BatchNorm2d updates them (unbiased variance)
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        with torch.no_grad():
            self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            self.running_var.mul_(1 - factor).add_(var * (count / max(count - 1, 1)), alpha=factor)
        return y
