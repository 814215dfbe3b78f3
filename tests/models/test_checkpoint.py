"""Saving and loading: this project's format, Lightning .ckpt files, and refusing mismatched weights."""

from __future__ import annotations

import pytest
import torch

from rsn_lightning import load_model as top_level_load_model
from rsn_lightning.models import RSN, load_checkpoint_dict, load_model, save_checkpoint
from rsn_lightning.normalization import MMPOSE_NORMALIZATION

SMALL = dict(blocks=(1, 1, 1, 1), width_mult=0.25, stem_channels=16, decoder_channels=32, num_keypoints=16)


def _trained_looking(net):
    # running stats away from their defaults, so a load that skipped buffers would show
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = _trained_looking(RSN(**SMALL))
    path = save_checkpoint(tmp_path / "m.pth", net, normalization=MMPOSE_NORMALIZATION, keypoints="mpii")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "rsn_lightning" and raw["version"] == 1 and raw["keypoints"] == "mpii"
    loaded = top_level_load_model(path)
    assert not loaded.training
    assert loaded.normalization == MMPOSE_NORMALIZATION and loaded.keypoints == "mpii"
    assert loaded.arch_config() == net.arch_config()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_lightning_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    net = _trained_looking(RSN(**SMALL, checkpoint_activations=True))
    sd = {f"net.{k}": v for k, v in net.state_dict().items()}
    sd["criterion.dummy"] = torch.zeros(1)  # other module state in a Lightning checkpoint is ignored
    torch.save(
        {
            "state_dict": sd,
            "arch": net.arch_config(),
            "keypoints": "mpii",
            "epoch": 3,
            "normalization": {"channel_order": "BGR", "mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]},
        },
        tmp_path / "last.ckpt",
    )
    loaded = load_model(tmp_path / "last.ckpt")
    assert loaded.normalization.mean == (0.4, 0.4, 0.4) and loaded.keypoints == "mpii"
    assert loaded.arch_config()["checkpoint_activations"] is False  # checkpointing is a training-time choice
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))
    assert set(load_checkpoint_dict(tmp_path / "last.ckpt")["state_dict"]) == set(net.state_dict())


def test_mismatching_weights_are_refused(tmp_path):
    net = RSN(**SMALL)
    good = net.state_dict()
    cases = {
        "missing": (
            {k: v for k, v in good.items() if not k.startswith("prm.conv.")},
            r"missing: prm\.conv\.",
        ),
        "unexpected": ({**good, "stages.1.extra": torch.zeros(1)}, r"1 unexpected: stages\.1\.extra"),
        "shape": (
            {**good, "prm.conv.conv.weight": torch.zeros(16, 16, 1, 1)},
            r"shape mismatch: prm\.conv\.conv\.weight: checkpoint \(16, 16, 1, 1\) != model \(16, 16, 3, 3\)",
        ),
    }
    for name, (sd, match) in cases.items():
        save_path = tmp_path / f"{name}.pth"
        torch.save(
            {
                "format": "rsn_lightning",
                "version": 1,
                "arch": net.arch_config(),
                "state_dict": sd,
                "normalization": None,
                "keypoints": "mpii",
            },
            save_path,
        )
        with pytest.raises(ValueError, match=match):
            load_model(save_path)


def test_foreign_checkpoint_is_refused_with_a_hint(tmp_path):
    torch.save(
        {"state_dict": {"backbone.top.top.0.conv.weight": torch.zeros(64, 3, 7, 7)}}, tmp_path / "mm.pth"
    )
    with pytest.raises(ValueError, match="rsn-convert"):
        load_model(tmp_path / "mm.pth")
