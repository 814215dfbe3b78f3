"""models.batchnorm.BatchNorm2d: nn.BatchNorm2d's numbers on the row-wise channels-last path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsn_lightning.models.batchnorm import BatchNorm2d, _RowwiseBatchNorm
from rsn_lightning.models.layers import ConvBNAct

CL = torch.channels_last


def _pair(c: int, momentum: float | None = 0.1, seed: int = 0) -> tuple[BatchNorm2d, nn.BatchNorm2d]:
    g = torch.Generator().manual_seed(seed)
    ours, ref = BatchNorm2d(c, momentum=momentum), nn.BatchNorm2d(c, momentum=momentum)
    with torch.no_grad():
        w, b = torch.rand(c, generator=g) + 0.5, torch.randn(c, generator=g)
        for m in (ours, ref):
            m.weight.copy_(w)
            m.bias.copy_(b)
    return ours, ref


# (4, C, H, W) sizes on either side of BatchNorm2d.round_trip_max_elements for every C below
SIZES = {"nchw_round_trip": (12, 10), "rowwise": (64, 50)}


@pytest.mark.parametrize("path", sorted(SIZES))
@pytest.mark.parametrize("c", [13, 17, 26, 52])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_training_equals_nn_batchnorm_in_float64(path, c, momentum):
    # against nn.BatchNorm2d in float64: at 12,800 values per channel nn.BatchNorm2d's own float32 weight
    # and bias gradients are 4e-4 off it (measured), more than ours, so float32 cannot be the reference
    ours, ref = _pair(c, momentum)
    ref = ref.double()
    g = torch.Generator().manual_seed(c)
    h, w = SIZES[path]
    for step in range(3):
        # an offset and scale per channel, as conv outputs have: the statistics must not cancel
        x = (torch.randn(4, c, h, w, generator=g) * 3 + torch.linspace(-5, 5, c).view(1, c, 1, 1))
        x = x.contiguous(memory_format=CL)
        grad = torch.randn(4, c, h, w, generator=g).contiguous(memory_format=CL)
        assert ours._native_is_slow(x), "a path of this class is the one under test"
        assert (x.numel() > ours.round_trip_max_elements) == (path == "rowwise")
        xa, xb = x.clone().requires_grad_(), x.double().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        assert ya._base is None and ya.is_contiguous(memory_format=CL) and ya.dtype == torch.float32
        torch.testing.assert_close(ya.double(), yb, rtol=1e-5, atol=1e-5)
        ya.backward(grad)
        yb.backward(grad.double())
        torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.weight.grad.double(), ref.weight.grad, rtol=1e-4, atol=2e-4)
        torch.testing.assert_close(ours.bias.grad.double(), ref.bias.grad, rtol=1e-4, atol=2e-4)
        torch.testing.assert_close(ours.running_mean.double(), ref.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.running_var.double(), ref.running_var, rtol=1e-5, atol=1e-6)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
        for m in (ours, ref):
            m.zero_grad()


def test_rowwise_gradient_is_batch_norms_in_float64():
    # the closed-form backward against finite differences (the Function itself is dtype-agnostic)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 13, 3, 4, generator=g, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    w = (torch.rand(13, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(13, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: _RowwiseBatchNorm.apply(*a, 1e-5)[0], (x, w, b))


def test_conv_bn_relu_block_trains_like_plain_modules():
    # ReLU runs in place on the BN output: the path must give autograd a tensor it can modify
    torch.manual_seed(0)
    block = ConvBNAct(8, 26, 3).to(memory_format=CL).train()
    plain = nn.Sequential(nn.Conv2d(8, 26, 3, padding=1, bias=False), nn.BatchNorm2d(26), nn.ReLU(inplace=True))
    plain.load_state_dict({k.replace("conv.", "0.").replace("bn.", "1."): v for k, v in block.state_dict().items()})
    plain = plain.to(memory_format=CL).train()
    x = torch.randn(3, 8, 9, 7).contiguous(memory_format=CL)
    torch.testing.assert_close(block(x), plain(x), rtol=1e-5, atol=1e-5)
    block(x).square().sum().backward()
    plain(x).square().sum().backward()
    torch.testing.assert_close(block.conv.weight.grad, plain[0].weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["nchw", "wide", "multiple_of_16", "eval", "bfloat16"])
def test_other_inputs_take_nn_batchnorm(case):
    c = {"wide": 104, "multiple_of_16": 32}.get(case, 26)
    ours, ref = _pair(c)
    x = torch.randn(2, c, 6, 5) * 2 + 1
    if case != "nchw":
        x = x.contiguous(memory_format=CL)
    if case == "eval":
        ours.eval(), ref.eval()
    if case == "bfloat16":
        ours, ref, x = ours.bfloat16(), ref.bfloat16(), x.bfloat16()
    assert not ours._native_is_slow(x)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_state_dict_is_nn_batchnorms():
    ours, ref = _pair(26)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert isinstance(ours, nn.BatchNorm2d)


def test_one_value_per_channel_is_refused_as_nn_batchnorm_does():
    ours, ref = _pair(13)
    x = torch.randn(1, 13, 1, 1).contiguous(memory_format=CL)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ref(x)
    # a 1x1 channels-last tensor is also NCHW-contiguous: the native path, the native error
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(x)
