"""Converted checkpoints reproduce the reference implementations' heatmaps.

RSN-18 in both layouts is checked against the fixtures' outputs (computed by the authors' code and by
mmpose). Layouts no fixture covers (multi-stage, RSN-50, the authors' PRM) are checked against
rsn_reference, an independent functional forward that itself is first checked against the fixtures.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rsn_reference as ref
import torch

from rsn_lightning.cli.convert import main
from rsn_lightning.models.checkpoint import load_model
from rsn_lightning.models.convert import convert_state_dict, rename_state_dict
from rsn_lightning.normalization import AUTHORS_NORMALIZATION, MMPOSE_NORMALIZATION

# max |difference| / max |reference output|: measured 1.9e-6 (authors' layout) and 2.0e-6 (mmpose) on
# the RSN-18 fixtures, 0.0 against rsn_reference on the generated layouts; the bound keeps a 5x margin
# for other CPUs' float32 convolutions
REL_TOL = 1e-5


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module", params=ref.LAYOUTS)
def fixture_case(request, rsn_checkpoint_fixtures, make_weights):
    layout = request.param
    sd = make_weights.make_state_dict(rsn_checkpoint_fixtures / f"{layout}_rsn18_keys.json")
    io = np.load(rsn_checkpoint_fixtures / f"{layout}_rsn18_io.npz")
    return layout, sd, io


def test_reference_reproduces_fixture_keys_and_output(fixture_case, rsn_checkpoint_fixtures):
    layout, sd, io = fixture_case
    spec = json.loads((rsn_checkpoint_fixtures / f"{layout}_rsn18_keys.json").read_text())
    assert [tuple(k) for k in spec["keys"]] == [(k, s) for k, s in ref.make_keys(layout)]
    with torch.no_grad():
        out = ref.reference_forward(sd, torch.from_numpy(io["input"]), layout)[-1][-1]
    assert _rel_err(out, io["output"]) <= REL_TOL


def test_cli_converts_fixture_checkpoint(fixture_case, tmp_path):
    layout, sd, io = fixture_case
    src = tmp_path / "src.pth"
    ckpt = {"model": sd, "iteration": 0} if layout == "official" else {"meta": {"epoch": 1}, "state_dict": sd}
    torch.save(ckpt, src)
    main(["--from", layout, str(src), str(tmp_path / "dst.pth")])
    net = load_model(tmp_path / "dst.pth")
    assert not net.training
    arch = net.arch_config()
    assert (arch["num_stages"], arch["blocks"], arch["num_keypoints"], arch["prm"]) == (
        1,
        [2, 2, 2, 2],
        17,
        "none",
    )
    assert arch["conv_bias"] is (layout == "official")
    assert net.normalization == (AUTHORS_NORMALIZATION if layout == "official" else MMPOSE_NORMALIZATION)
    assert net.normalization.channel_order == ("BGR" if layout == "official" else "RGB")
    assert net.keypoints == "coco"
    # the file itself records the authors' COCO codec and test-time settings (caiyuanhao1998/RSN
    # dataset/attribute.py: 192x256, kernels 15..5, blur 5, quarter shift; flip test; box x1.09 / x1.135)
    recorded = torch.load(tmp_path / "dst.pth", weights_only=True)
    assert recorded["codec"] == {"input_size": [192, 256], "target_type": "kernel", "kernels": [15, 11, 9, 7, 5],
                                 "sigma": None, "decode": "authors", "blur_kernel": 5, "shift": 0.25, "stride": 4}
    assert recorded["test"]["flip"] is True and recorded["test"]["box_extension"] == [0.09, 0.135]
    assert net.codec.to_dict() == recorded["codec"] and net.test_settings == recorded["test"]
    with torch.no_grad():
        out = net(torch.from_numpy(io["input"]))
    assert out.shape == (2, 17, 64, 48)
    assert _rel_err(out, io["output"]) <= REL_TOL


# (layout, stages, blocks, keypoints, prm): cases the fixtures do not cover, on small inputs
GENERATED = [
    ("official", 2, (2, 2, 2, 2), 17, True),  # 2xRSN-18 with the authors' PRM (their 4xRSN18 network.py)
    ("official", 1, (3, 4, 6, 3), 17, True),  # RSN-50 + PRM
    ("official", 3, (1, 1, 1, 1), 16, False),  # three stages: cross-stage aggregation chained twice
    ("mmpose", 2, (3, 4, 6, 3), 17, False),  # 2xRSN-50 in mmpose's layout
]


@pytest.mark.parametrize(
    "case",
    GENERATED,
    ids=lambda c: f"{c[0]}-{c[1]}x{''.join(map(str, c[2]))}-k{c[3]}" + ("-prm" if c[4] else ""),
)
def test_generated_layouts_match_reference(case, tmp_path, make_weights):
    layout, stages, blocks, k, prm = case
    keys = ref.make_keys(layout, num_stages=stages, blocks=blocks, num_keypoints=k, prm=prm)
    ref.write_keys_json(tmp_path / "keys.json", keys, seed=7)
    sd = make_weights.make_state_dict(tmp_path / "keys.json")
    net = convert_state_dict(sd, layout)
    arch = net.arch_config()
    assert (arch["num_stages"], arch["blocks"], arch["num_keypoints"], arch["prm"]) == (
        stages,
        list(blocks),
        k,
        "last_unit" if prm else "none",
    )
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref.reference_forward(sd, x, layout)
        got = net.forward_all(x)
    assert len(got) == stages and all(len(s) == 4 for s in got)
    for s in range(stages):
        for u in range(4):
            assert got[s][u].shape == (2, k, 16, 24)
            assert _rel_err(got[s][u], expected[s][u]) <= REL_TOL, (s, u)


def test_converter_refuses_unknown_keys_and_mmpose_prm(make_weights, tmp_path):
    keys = ref.make_keys("official", blocks=(1, 1, 1, 1))
    ref.write_keys_json(tmp_path / "k.json", keys, seed=1)
    sd = make_weights.make_state_dict(tmp_path / "k.json")
    with pytest.raises(ValueError, match="stage0.extra.weight"):
        rename_state_dict({**sd, "stage0.extra.weight": torch.zeros(1)}, "official")
    with pytest.raises(ValueError, match="use_prm"):
        rename_state_dict({"head.predict_layers.3.prm.middle_path.0.weight": torch.zeros(17, 17)}, "mmpose")
    with pytest.raises(ValueError, match="official"):
        rename_state_dict(sd, "caffe")
    truncated = {k: v for k, v in sd.items() if "up4.res_conv1" not in k}
    with pytest.raises(ValueError, match=r"7 missing: stages\.0\.decoder\.units\.3\.head\.0\."):
        convert_state_dict(truncated, "official")


def test_cli_records_the_authors_mpii_codec_at_the_given_input_size(make_weights, tmp_path, capsys):
    keys = ref.make_keys("official", blocks=(1, 1, 1, 1), num_keypoints=16)
    ref.write_keys_json(tmp_path / "k.json", keys, seed=3)
    torch.save({"model": make_weights.make_state_dict(tmp_path / "k.json")}, tmp_path / "src.pth")
    main(["--from", "official", str(tmp_path / "src.pth"), str(tmp_path / "dst.pth"), "--input-size", "192", "256"])
    recorded = torch.load(tmp_path / "dst.pth", weights_only=True)
    # the authors' MPII decoding blur is 9 and their MPII box extension x1.25 (dataset/attribute.py)
    assert (recorded["keypoints"], recorded["codec"]["input_size"], recorded["codec"]["blur_kernel"]) == (
        "mpii", [192, 256], 9)
    assert recorded["test"]["box_extension"] == [0.25, 0.25]
    assert load_model(tmp_path / "dst.pth").input_size == (192, 256)
    with pytest.raises(SystemExit) as exit_info:
        main(["--from", "official", str(tmp_path / "src.pth"), str(tmp_path / "bad.pth"), "--input-size", "190", "256"])
    assert exit_info.value.code == 2 and "codec.input_size=[190, 256]" in capsys.readouterr().err
