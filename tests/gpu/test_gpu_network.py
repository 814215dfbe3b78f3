"""The network on one CUDA GPU against the CPU: float32 forward and backward, bf16 and fp16 autocast with
channels-last, batch norm, and the flip test. Every comparison is against the CPU float32 result of the same
weights and input; tolerances are relative to the output's norm (or its largest value) and justified where
they are set."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rsn_lightning.keypoints import get_keypoint_spec
from rsn_lightning.models import create_model
from rsn_lightning.models.batchnorm import BatchNorm2d as RowwiseBatchNorm2d
from rsn_lightning.models.tta import flip_test

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# RSN-18 at its paper input, and the CPU quickstart's rsn_tiny at its own
PRESETS = {"rsn18": (256, 192), "rsn_tiny": (128, 96)}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).norm() / b.float().cpu().norm().clamp_min(1e-12))


def _net_and_input(name: str, batch: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    h, w = PRESETS[name]
    net = create_model(name).train()
    x = torch.randn(batch, 3, h, w)
    return net, x


@pytest.mark.parametrize("name", list(PRESETS))
def test_float32_forward_and_backward_on_cuda_match_cpu(name):
    net, x = _net_and_input(name)
    results = {}
    for device in ("cpu", "cuda"):
        model = copy.deepcopy(net).to(device)
        inp = x.to(device).requires_grad_(True)
        out = model(inp)
        (out.float() ** 2).mean().backward()
        # forward() returns the last unit's heatmaps: the coarser units' heads get no gradient
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[device] = (out.detach(), inp.grad, grads)
    # float32 on both sides (TF32 off, conftest.py): only summation order differs (cuDNN's algorithms against
    # oneDNN's), ~1e-6 relative per layer; 1e-4 over RSN-18's ~60 layers and the batch norms' reductions
    # still fails on any real bug (a wrong layout or a dropped term is O(1))
    for what, cpu, gpu in zip(("heatmaps", "input grad", "weight grads"), results["cpu"], results["cuda"]):
        assert _relative_error(gpu, cpu) < 1e-4, what


# bf16 keeps 8 mantissa bits (~0.4% per rounding); through the network the errors add up to a few %: the
# project's bf16 bound for the same network on the CPU is 5% in norm (tests/models/test_fuse.py). fp16 keeps 11
# significant bits, 8x finer: 1% in norm (a fifth of the bf16 bound)
AUTOCAST_BOUNDS = {"bf16": (torch.bfloat16, 0.05), "fp16": (torch.float16, 0.01)}


@pytest.mark.parametrize("amp", list(AUTOCAST_BOUNDS))
@pytest.mark.parametrize("name", list(PRESETS))
def test_autocast_channels_last_on_cuda_matches_cpu_float32(name, amp):
    dtype, bound = AUTOCAST_BOUNDS[amp]
    net, x = _net_and_input(name)
    net.eval()
    reference = net(x).detach()
    model = copy.deepcopy(net).to("cuda", memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        out = model(x.to("cuda", memory_format=torch.channels_last))
    assert torch.isfinite(out).all()  # fp16 overflows at 65504: the heatmaps (peaks ~255 x gain) must not
    assert _relative_error(out, reference) < bound


def test_rowwise_batchnorm_is_not_used_on_cuda_and_native_cuda_matches_cpu():
    torch.manual_seed(0)
    # 24 channels, channels-last, float32, training: exactly the case the CPU takes the row-wise path for
    bn = RowwiseBatchNorm2d(24).train()
    x = torch.randn(8, 24, 32, 24).contiguous(memory_format=torch.channels_last)
    assert bn._native_is_slow(x)  # the CPU side takes the row-wise kernel ...
    cuda_bn = copy.deepcopy(bn).cuda()
    assert not cuda_bn._native_is_slow(x.cuda())  # ... CUDA never does
    reference = nn.BatchNorm2d(24).train()
    reference.load_state_dict(bn.state_dict())
    ref_out = reference(x.contiguous())
    out = cuda_bn(x.cuda().requires_grad_(True))
    # one reduction over 8x32x24 values per channel in float32: agreement to ~1e-6 relative; 1e-5 allows for
    # the two libraries' summation orders
    assert _relative_error(out, ref_out) < 1e-5
    assert _relative_error(cuda_bn.running_mean, reference.running_mean) < 1e-5
    assert _relative_error(cuda_bn.running_var, reference.running_var) < 1e-5


def test_flip_test_on_cuda_equals_cpu():
    net, x = _net_and_input("rsn18", batch=2)
    net.eval()
    flip_index = get_keypoint_spec("coco").flip_index
    reference = flip_test(net, x, flip_index)
    out = flip_test(copy.deepcopy(net).cuda(), x.cuda(), flip_index)
    # float32 forward twice plus an exact mirror and average: the float32 forward's bound (above)
    assert _relative_error(out, reference) < 1e-4
    # and it is a real flip test: the unflipped forward differs from it by far more than the tolerance
    assert _relative_error(net(x).detach(), reference) > 1e-2
