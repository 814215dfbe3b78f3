"""Inference modes against the plain float32 eval forward: BN folding, channels-last, bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsn_lightning.bench.workloads import Workload
from rsn_lightning.models import RSN, create_model
from rsn_lightning.models.fuse import count_batchnorms, fold_batchnorm
from rsn_lightning.training.precision import native_bf16

SMALL = dict(num_stages=2, blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32)


def _trained_looking(net: nn.Module) -> nn.Module:
    """Random BN affine terms and BN statistics calibrated on random images (as after training, each
    layer's outputs are normalised), so that folding has something to fold."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(4, 3, 96, 64, generator=gen))
    return net.eval()


def _x():
    return torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))


def test_fold_batchnorm_matches_the_eval_forward_and_leaves_the_network_alone():
    net = _trained_looking(RSN(**SMALL))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net)
    assert count_batchnorms(net) > 50 and count_batchnorms(folded) == 0
    with torch.no_grad():
        ref, out = net(_x()), folded(_x())
    # folding changes the rounding only; BN's small-variance channels amplify it (1.4e-4 to 1.6e-4 of the
    # largest value measured over three seeds)
    assert (out - ref).abs().max() <= 5e-4 * ref.abs().max()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_fold_batchnorm_in_channels_last_matches():
    net = _trained_looking(RSN(**SMALL))
    folded = fold_batchnorm(net).to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = net(_x())
        out = folded(_x().contiguous(memory_format=torch.channels_last))
    assert (out - ref).abs().max() <= 5e-4 * ref.abs().max()


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bf16 (autocast would be emulated)")
def test_bf16_autocast_matches_float32_loosely():
    torch.manual_seed(0)
    net = RSN(**SMALL).eval()  # BN at identity: calibrated random nets amplify rounding chaotically
    with torch.no_grad():
        ref = net(_x())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(_x().contiguous(memory_format=torch.channels_last)).float()
    # bf16 keeps 8 bits of mantissa (relative step 2^-8 ~ 0.4%) and errors add up over ~60 layers:
    # over init seeds 0-5 the relative error norm was 1.3-2.5% (largest single value up to 11%)
    assert (out - ref).norm() <= 0.05 * ref.norm()
    assert torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1] > 0.999


# rsn-bench's modes (the default: models.fuse.inference_network) against the plain float32 eval forward
def _mode_against_plain(mode: str, net=None):
    """rsn-bench's inference of ``mode`` and the plain float32 eval forward, on an rsn_tiny whose BN
    statistics are calibrated (unless ``net`` is given)."""
    net = _trained_looking(create_model("rsn_tiny")) if net is None else net
    wl = Workload("rsn_tiny", (64, 96), 2, mode, torch.device("cpu"), channels_last=True, net=net)
    if wl.skipped:
        pytest.skip(wl.skipped)
    return wl, wl.infer_output(), wl.reference_output()


# every float32 mode differs from the plain float32 eval forward (NCHW, BN unfolded) by rounding only:
# measured on this calibrated rsn_tiny, of the largest value: default (BN folded) 2.9e-5, ONNX Runtime
# 2.0e-5, plain channels-last 2.5e-6, nchw 0; compile 1.6e-6 on an uncalibrated one. 5e-4 is the
# folding tests' bound above
FLOAT32_TOLERANCE = 5e-4


@pytest.mark.parametrize("mode", ["default", "plain", "nchw", "onnxruntime"])
def test_every_inference_mode_gives_the_plain_float32_forward(mode):
    if mode == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[export]')")
    wl, out, ref = _mode_against_plain(mode)
    if mode == "default":  # the library's inference network: BN folded, channels-last
        assert count_batchnorms(wl.forward) == 0 and count_batchnorms(wl.plain) > 50
    assert out.shape == ref.shape == (2, 17, 24, 16)
    assert (out - ref).abs().max() <= FLOAT32_TOLERANCE * ref.abs().max()


@pytest.mark.slow  # inductor compiles the network to C++ first: 88 s for rsn_tiny at 64x64 on the loaded 2-core machine
def test_compiled_inference_gives_the_plain_float32_forward():
    wl, out, ref = _mode_against_plain("compile")
    assert (out - ref).abs().max() <= FLOAT32_TOLERANCE * ref.abs().max()
    assert wl.compile_seconds["infer"] > 0


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bf16 (rsn-bench skips amp there)")
def test_amp_inference_matches_float32_loosely():
    torch.manual_seed(0)
    # BN at identity: calibrated random BN statistics amplify bf16's rounding chaotically (11% measured)
    _, out, ref = _mode_against_plain("amp", net=create_model("rsn_tiny").eval())
    # bf16 keeps 8 bits of mantissa and errors add up over the layers: relative error norm 0.8-1.6% over
    # init seeds 0-3 (largest single value 1.4-2.7% of the largest output)
    assert (out - ref).norm() <= 0.05 * ref.norm()
