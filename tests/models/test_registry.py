"""The registry defines each preset completely; a None override keeps the preset's value."""

from __future__ import annotations

import inspect

import pytest

from rsn_lightning.models import RSN
from rsn_lightning.models.registry import PRESETS, create_model, list_models, preset_config


def test_every_preset_gives_every_constructor_argument():
    """preset_config is the whole architecture: every argument RSN records, none left to its defaults."""
    recorded = set(create_model("rsn_tiny").arch_config())
    assert recorded == set(inspect.signature(RSN).parameters) - {"use_prm", "efficient"}  # the legacy aliases
    for name in list_models():
        assert set(preset_config(name)) == recorded, name
    tiny = preset_config("rsn_tiny")
    assert create_model("rsn_tiny").arch_config() == {**tiny, "blocks": list(tiny["blocks"])}


def test_none_overrides_keep_the_preset():
    nulls = dict(num_stages=None, blocks=None, num_keypoints=None, width_mult=None, prm=None,
                 checkpoint_activations=None, output_gain=None, init=None)
    assert create_model("rsn_tiny", **nulls).arch_config() == create_model("rsn_tiny").arch_config()
    tiny = create_model("rsn_tiny", **{**nulls, "num_stages": 2, "num_keypoints": 16}).arch_config()
    assert (tiny["num_stages"], tiny["num_keypoints"], tiny["output_gain"], tiny["init"]) == (2, 16, 16.0, "kaiming")


def test_an_unknown_argument_or_preset_is_refused_with_the_choices():
    with pytest.raises(TypeError, match=r"num_stagez.*num_stages"):
        preset_config("rsn18", num_stagez=2)
    with pytest.raises(ValueError, match=r"unknown model 'rsn34'.*rsn18"):
        create_model("rsn34")
    assert preset_config("RSN-Tiny") == preset_config("rsn_tiny") == PRESETS["rsn_tiny"]
