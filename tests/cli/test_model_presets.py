"""Every experiment and every model group composes to the network the paper (and the quickstart) name,
through the registry preset its conf/model/*.yaml names; the keys users sweep stay overridable.

The expected architectures were written from the YAML that listed every key before the presets moved to
models/registry.py (so this checks that the move changed no network)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from test_configs import CONF, compose_train

from rsn_lightning.cli.config_checks import validate_config
from rsn_lightning.errors import BadInputError
from rsn_lightning.models.registry import preset_config

PAPER = dict(num_stages=1, blocks=[2, 2, 2, 2], num_keypoints=17, width_mult=1.0, stem_channels=64,
             decoder_channels=256, num_branches=4, branch_ratio=0.40625, prm="last_unit",
             checkpoint_activations=False, conv_bias=False, output_gain=1.0, init="authors")
RSN50 = dict(blocks=[3, 4, 6, 3])
TINY = dict(blocks=[1, 1, 1, 1], width_mult=0.5, stem_channels=32, decoder_channels=64, output_gain=16.0,
            init="kaiming")
EXPECTED = {
    "model=rsn18": {},
    "model=rsn50": RSN50,
    "model=rsn101": dict(blocks=[3, 4, 23, 3]),
    "model=2xrsn50": {**RSN50, "num_stages": 2},
    "model=3xrsn50": {**RSN50, "num_stages": 3},
    "model=4xrsn50": {**RSN50, "num_stages": 4},
    "model=rsn_tiny": TINY,
    "experiment=coco_rsn18_256x192": {},
    "experiment=coco_rsn18_256x192_noprm": dict(prm="none"),
    "experiment=coco_rsn50_256x192": RSN50,
    "experiment=coco_rsn101_256x192": dict(blocks=[3, 4, 23, 3]),
    "experiment=coco_2xrsn50_256x192": {**RSN50, "num_stages": 2},
    "experiment=coco_3xrsn50_256x192": {**RSN50, "num_stages": 3},
    "experiment=coco_4xrsn50_256x192": {**RSN50, "num_stages": 4},
    "experiment=coco_4xrsn50_384x288": {**RSN50, "num_stages": 4},
    "experiment=mpii_4xrsn50_256x256": {**RSN50, "num_stages": 4, "num_keypoints": 16},
    "experiment=quickstart": TINY,
}


def composed_arch(cfg) -> dict:
    """The architecture the app builds from cfg.model.net (create_model(**net)), without building it."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert net.pop("_target_") == "rsn_lightning.models.create_model"
    arch = preset_config(**net)
    return {**arch, "blocks": list(arch["blocks"])}


def test_the_table_covers_every_shipped_experiment_and_model():
    shipped = {f"{group}={p.stem}" for group in ("model", "experiment") for p in (CONF / group).glob("*.yaml")}
    assert shipped == set(EXPECTED)


def test_composed_network_is_the_named_architecture(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for choice in sorted(EXPECTED):
            cfg = compose(config_name="train", overrides=[f"paths.root_dir={tmp_path}", choice])
            assert composed_arch(cfg) == {**PAPER, **EXPECTED[choice]}, choice


def test_quickstart_builds_the_composed_architecture(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_train(tmp_path, ["experiment=quickstart"])
    assert instantiate(cfg.model.net).arch_config() == composed_arch(cfg) == {**PAPER, **TINY}


def test_the_swept_keys_are_overridable_as_the_readme_types_them(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=quickstart", "model.net.num_stages=2", "model.net.width_mult=0.25",
                                   "model.net.prm=last_stage", "model.net.checkpoint_activations=true",
                                   "model.net.output_gain=4", "model.net.init=authors"])
    arch = composed_arch(cfg)
    assert arch == {**PAPER, **TINY, "num_stages": 2, "width_mult": 0.25, "prm": "last_stage",
                    "checkpoint_activations": True, "output_gain": 4, "init": "authors"}


def test_the_preset_keypoints_are_checked_against_the_data(tmp_path):
    """A null num_keypoints is the preset's 17: refused at the door for MPII's 16, as an explicit 17 was."""
    cfg = compose_train(tmp_path, ["data=mpii"])
    with pytest.raises(BadInputError, match=r"model\.net\.num_keypoints=17: expected 16"):
        validate_config(cfg, "train")
    cfg = compose_train(tmp_path, ["model.net.name=rsn19"])
    with pytest.raises(BadInputError, match=r"model\.net\.name='rsn19': expected one of .*rsn18"):
        validate_config(cfg, "train")
