"""The network's structure, shapes, options and errors."""

from __future__ import annotations

import json

import pytest
import torch

from rsn_lightning.models import RSN, create_model, list_models
from rsn_lightning.models.prm import PoseRefineMachine
from rsn_lightning.models.rsb import ResidualStepsBlock

SMALL = dict(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32)


def _x(n=2, h=64, w=64, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_rsb_widths_follow_the_authors_rule():
    # the authors' layer2.0 (64 -> 128, stride 2) has branches of 64*26//64 = 26 channels, layer2.1 has 52
    first, second = ResidualStepsBlock(64, 128, stride=2), ResidualStepsBlock(128, 128)
    assert first.conv_in.conv.weight.shape == (104, 64, 1, 1) and first.conv_in.conv.stride == (2, 2)
    assert second.conv_in.conv.weight.shape == (208, 128, 1, 1)
    assert [len(b) for b in first.steps] == [1, 2, 3, 4]
    assert first.shortcut is not None and second.shortcut is None
    assert first(torch.randn(2, 64, 16, 12)).shape == (2, 128, 8, 6)
    three = ResidualStepsBlock(40, 40, num_branches=3, branch_ratio=0.5)
    assert [len(b) for b in three.steps] == [1, 2, 3] and three.branch_channels == 20


def _branch_ends(blk, silenced):
    """Each branch's last step output, with the given steps [(branch, step)] forced to output zero."""
    with torch.no_grad():
        for i, j in silenced:
            blk.steps[i][j].bn.weight.zero_()
            blk.steps[i][j].bn.bias.zero_()
    captured = []
    hooks = [b[-1].register_forward_hook(lambda m, i, o: captured.append(o.clone())) for b in blk.steps]
    with torch.no_grad():
        blk(torch.randn(1, 16, 6, 6, generator=torch.Generator().manual_seed(1)))
    for h in hooks:
        h.remove()
    return captured


@pytest.mark.parametrize(
    "silenced, changed",
    [
        ((0, 0), [True, True, True, True]),  # branch 0 feeds step 0 of branch 1, which feeds branch 2, ...
        ((1, 1), [False, True, True, True]),  # the last step of branch 1 feeds step 1 of branch 2 and on
        ((3, 3), [False, False, False, True]),  # the last branch feeds nothing
    ],
)
def test_rsb_intra_level_aggregation(silenced, changed):
    torch.manual_seed(0)
    blk = ResidualStepsBlock(16, 16, num_branches=4, branch_ratio=0.5).eval()
    base = _branch_ends(blk, [])
    cut = _branch_ends(blk, [silenced])
    assert [not torch.equal(a, b) for a, b in zip(base, cut)] == changed


def test_forward_shapes_for_paper_and_cpu_sizes():
    net = RSN(num_stages=2, **SMALL).eval()
    with torch.no_grad():
        for h, w in [(256, 192), (128, 96), (96, 64)]:
            outs = net.forward_all(_x(1, h, w))
            assert len(outs) == 2 and all(len(s) == 4 for s in outs)
            assert all(t.shape == (1, 17, h // 4, w // 4) for s in outs for t in s)
            assert torch.equal(net(_x(1, h, w)), net.forward_all(_x(1, h, w))[-1][-1])


def test_prm_switch_and_output():
    with_prm, without = RSN(**SMALL, use_prm=True), RSN(**SMALL, use_prm=False)
    assert isinstance(with_prm.prm, PoseRefineMachine) and without.prm is None
    assert not any(k.startswith("prm.") for k in without.state_dict())
    prm = PoseRefineMachine(5).eval()
    x = torch.randn(2, 5, 8, 6)
    f = prm.conv(x)
    y = prm(x)
    # the attention factor (1 + c*s) lies in (1, 2) and scales the conv output elementwise
    ratio = y[f > 1e-3] / f[f > 1e-3]
    assert ratio.min() > 1 and ratio.max() < 2
    assert prm.spatial_att[1].conv.groups == 5 and prm.spatial_att[1].conv.kernel_size == (9, 9)


def test_arch_config_is_json_and_rebuilds():
    net = RSN(num_stages=2, num_keypoints=16, **SMALL, use_prm=False)
    cfg = json.loads(json.dumps(net.arch_config()))
    rebuilt = RSN(**cfg)
    assert rebuilt.arch_config() == cfg
    rebuilt.load_state_dict(net.state_dict())  # same parameter names and shapes
    assert cfg["blocks"] == [1, 1, 1, 1] and cfg["num_keypoints"] == 16


def test_registry():
    assert set(list_models()) >= {"rsn18", "rsn50", "rsn101", "2xrsn50", "3xrsn50", "4xrsn50", "rsn_tiny"}
    cfg = create_model("4xrsn50", num_keypoints=16).arch_config()
    assert (cfg["num_stages"], cfg["blocks"], cfg["prm"], cfg["num_keypoints"]) == (
        4,
        [3, 4, 6, 3],
        "last_unit",
        16,
    )
    assert create_model("rsn101").arch_config()["blocks"] == [3, 4, 23, 3]
    with pytest.raises(ValueError, match=r"unknown model 'rsn34'.*rsn18"):
        create_model("rsn34")


@pytest.mark.parametrize(
    "shape, match",
    [
        ((1, 3, 100, 64), r"divisible by 32.*100x64"),
        ((1, 1, 64, 64), r"\[N, 3, H, W\].*\(1, 1, 64, 64\)"),
        ((3, 64, 64), r"\[N, 3, H, W\]"),
    ],
)
def test_bad_input_is_refused(shape, match):
    with pytest.raises(ValueError, match=match):
        RSN(**SMALL)(torch.zeros(shape))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="blocks needs 4"):
        RSN(blocks=(2, 2, 2))
    with pytest.raises(ValueError, match="num_stages"):
        RSN(num_stages=0)


def test_init_matches_authors():
    net = RSN(**SMALL)
    bn = net.stages[0].encoder.layers[1][0].conv_in.bn
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(
        bn.bias, torch.zeros_like(bn.bias)
    )
    w = net.stages[0].decoder.units[0].head[0].conv.weight  # 1x1, fan_out = 32: std sqrt(2/32) = 0.25
    assert 0.2 < w.std().item() < 0.3


def test_channels_last_matches():
    net = RSN(num_stages=2, **SMALL).eval()
    x = _x()
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl(x.to(memory_format=torch.channels_last))
    # untrained eval-mode activations reach ~1e3 here, so compare relative to the largest value
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = RSN(num_stages=2, **SMALL).train()
    ckpt = RSN(num_stages=2, **SMALL, checkpoint_activations=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = _x()
    grads = []
    for net in (plain, ckpt):
        loss = sum(t.square().mean() for s in net.forward_all(x) for t in s)
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert len(grads[0]) == len(grads[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    net = RSN(num_stages=2, **SMALL).eval()
    x = _x()
    with torch.no_grad():
        ref = net(x)
        out = torch.compile(net)(x)
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
