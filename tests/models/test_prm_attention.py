"""PoseRefineMachine.attention(): what the PRM computes, exposed without changing its output."""

from __future__ import annotations

import torch

from rsn_lightning.models.prm import PoseRefineMachine
from rsn_lightning.models.registry import create_model
from rsn_lightning.reports.predictions import network_maps


def test_attention_parts_rebuild_the_forward_output():
    torch.manual_seed(0)
    prm = PoseRefineMachine(17).eval()
    x = torch.randn(2, 17, 16, 12)
    with torch.no_grad():
        out = prm(x)
        parts = prm.attention(x)
    assert torch.equal(parts["output"], out)
    assert parts["channel"].shape == (2, 17, 1, 1) and parts["spatial"].shape == (2, 17, 16, 12)
    assert torch.equal(parts["attention"], parts["channel"] * parts["spatial"])
    assert ((parts["attention"] > 0) & (parts["attention"] < 1)).all()  # products of two sigmoids
    torch.testing.assert_close(parts["features"] * (1 + parts["attention"]), out, rtol=0, atol=0)


def test_network_maps_give_every_unit_and_the_prm_input_without_changing_the_outputs():
    torch.manual_seed(0)
    net = create_model("rsn_tiny", num_stages=2).eval()
    crop = torch.randn(3, 128, 96)
    maps = network_maps(net, crop)
    with torch.no_grad():
        reference = net.forward_all(crop[None])
    assert [len(stage) for stage in maps["units"]] == [4, 4]
    for got_stage, ref_stage in zip(maps["units"], reference):
        for got, ref in zip(got_stage, ref_stage):
            assert torch.equal(torch.from_numpy(got), ref[0])
    gain = net.arch_config().get("output_gain", 1.0)
    # the PRM's output, scaled by the network's output gain, is the final heatmap
    torch.testing.assert_close(torch.from_numpy(maps["prm"]["after"]) * gain, reference[-1][-1][0])
    assert not net.prm._forward_hooks  # the capturing hook is removed
