"""PRM placement (``RSN(prm=...)``): the paper's PRM ablation as an option of the network."""

from __future__ import annotations

import pytest
import torch

from rsn_lightning import load_model
from rsn_lightning.models.checkpoint import save_checkpoint
from rsn_lightning.models.flops import count_params
from rsn_lightning.models.prm import PoseRefineMachine
from rsn_lightning.models.rsn import PRM_PLACEMENTS, RSN

SMALL = dict(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32, num_keypoints=5)
IMAGES = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))


def _plain_weights_of(net: RSN) -> dict:
    return {k: v for k, v in net.state_dict().items() if not k.startswith(("prm.", "coarse_unit_prms."))}


@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("prm", PRM_PLACEMENTS)
def test_each_placement_builds_and_keeps_the_output_shapes(prm, stages):
    net = RSN(num_stages=stages, prm=prm, **SMALL).eval()
    with torch.no_grad():
        outs = net.forward_all(IMAGES)
    assert [len(units) for units in outs] == [4] * stages
    assert all(h.shape == (2, 5, 16, 8) for units in outs for h in units)
    assert net.arch_config()["prm"] == prm


def test_prm_off_is_the_plain_network_and_the_placements_refine_exactly_their_units():
    """With the same weights, "none" gives the unrefined heatmaps bit for bit; "last_unit" changes only
    the last stage's last unit (by its PRM), "last_stage" each of the last stage's units (by its own)."""
    nets = {p: RSN(num_stages=2, prm=p, **SMALL).eval() for p in PRM_PLACEMENTS}
    plain = nets["none"]
    for p in ("last_unit", "last_stage"):
        nets[p].load_state_dict({**nets[p].state_dict(), **_plain_weights_of(plain)})
    with torch.no_grad():
        base = plain.forward_all(IMAGES)
        last_unit = nets["last_unit"].forward_all(IMAGES)
        last_stage = nets["last_stage"].forward_all(IMAGES)
        for s in range(2):
            for u in range(4):
                if s == 1 and u == 3:
                    assert torch.equal(last_unit[s][u], nets["last_unit"].prm(base[s][u]))
                    assert not torch.equal(last_unit[s][u], base[s][u])
                else:
                    assert torch.equal(last_unit[s][u], base[s][u]), (s, u)
                if s == 1:
                    prm = nets["last_stage"].prm if u == 3 else nets["last_stage"].coarse_unit_prms[u]
                    assert torch.equal(last_stage[s][u], prm(base[s][u])), u
                else:
                    assert torch.equal(last_stage[s][u], base[s][u]), u


def test_parameter_counts_differ_by_whole_prms():
    one_prm = count_params(PoseRefineMachine(5))
    counts = {p: count_params(RSN(prm=p, **SMALL)) for p in PRM_PLACEMENTS}
    assert counts["last_unit"] - counts["none"] == one_prm
    assert counts["last_stage"] - counts["none"] == 4 * one_prm


def test_use_prm_still_builds_and_older_checkpoints_load(tmp_path):
    assert RSN(use_prm=True, **SMALL).arch_config()["prm"] == "last_unit"
    assert RSN(use_prm=False, **SMALL).arch_config()["prm"] == "none"
    assert RSN(prm=True, **SMALL).arch_config()["prm"] == "last_unit"
    with pytest.raises(ValueError, match="contradicts use_prm"):
        RSN(prm="last_stage", use_prm=False, **SMALL)
    with pytest.raises(ValueError, match="prm must be one of"):
        RSN(prm="every_unit", **SMALL)
    # a checkpoint written before `prm` existed records use_prm in its arch
    net = RSN(prm="last_unit", **SMALL).eval()
    path = save_checkpoint(tmp_path / "old.pth", net)
    ckpt = torch.load(path, weights_only=True)
    arch = dict(ckpt["arch"])
    del arch["prm"], arch["init"]
    ckpt["arch"] = {**arch, "use_prm": True}
    torch.save(ckpt, path)
    loaded = load_model(path)
    assert loaded.arch_config()["prm"] == "last_unit"
    with torch.no_grad():
        assert torch.equal(loaded(IMAGES), net(IMAGES))


def _is_pytorch_default(conv: torch.nn.Conv2d) -> bool:
    """PyTorch's default conv init (kaiming_uniform, a=sqrt(5)) bounds the weights by 1/sqrt(fan_in);
    Kaiming-normal (fan_out) weights of these layers exceed that bound."""
    w = conv.weight
    return w.abs().max().item() <= (w[0].numel()) ** -0.5


def test_authors_init_is_kaiming_in_the_encoders_only():
    """init="authors" as the authors' network.py: Kaiming-normal in the encoders, PyTorch's default in
    the stem, decoder and PRM; init="kaiming" (mmpose's backbone) everywhere."""
    torch.manual_seed(0)
    authors, kaiming = RSN(init="authors", **SMALL), RSN(init="kaiming", **SMALL)
    for net, default_outside in ((authors, True), (kaiming, False)):
        encoder_conv = net.stages[0].encoder.layers[0][0].conv_out.conv
        outside = [net.stem.conv.conv, net.stages[0].decoder.units[3].lateral.conv, net.prm.conv.conv]
        assert not _is_pytorch_default(encoder_conv)
        assert all(_is_pytorch_default(c) == default_outside for c in outside)
    with pytest.raises(ValueError, match="init must be one of"):
        RSN(init="xavier", **SMALL)
