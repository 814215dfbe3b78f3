"""Every shipped config composes, and every experiment instantiates its model (build only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import open_dict

from rsn_lightning.cli.common import config_dir
from rsn_lightning.training.validators import module_inputs

CONF = Path(config_dir())
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_train(tmp_path, overrides=(), config_name="train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, return_hydra_config=True,
                      overrides=[f"paths.root_dir={tmp_path}", *overrides])
    # what @hydra.main does before the app runs: makes ${hydra:...} resolvable
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "out")
        del cfg["hydra"]  # @hydra.main hands the app its config without the hydra node
    return cfg


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_builds_its_model(name, tmp_path):
    cfg = compose_train(tmp_path, [f"experiment={name}"])
    assert cfg.model.net._target_ == "rsn_lightning.models.create_model"
    net = instantiate(cfg.model.net)
    w, h = cfg.data.input_size
    assert sum(p.numel() for p in net.parameters()) > 0
    if name == "quickstart":  # cheap enough to run through once
        out = net.eval()(torch.zeros(1, 3, h, w))
        assert out.shape == (1, net.num_keypoints, h // 4, w // 4)
    codec = instantiate(cfg.codec)
    datamodule = instantiate(cfg.data, codec=codec)
    module = instantiate(cfg.model, _partial_=True, net=net)(codec=codec, **module_inputs(datamodule))
    assert module.net is net and module.keypoint_spec is datamodule.keypoint_spec


def test_paper_experiments_cover_the_tables():
    expected = {"coco_rsn18_256x192", "coco_rsn50_256x192", "coco_rsn101_256x192", "coco_2xrsn50_256x192",
                "coco_3xrsn50_256x192", "coco_4xrsn50_256x192", "coco_4xrsn50_384x288",
                "mpii_4xrsn50_256x256", "quickstart"}
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "data", "model"])
def test_every_group_option_composes(group, tmp_path):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose_train(tmp_path, [f"{group}={option}"])
        assert cfg is not None


def test_eval_config_requires_a_checkpoint(tmp_path):
    from rsn_lightning.cli.common import check_config

    cfg = compose_train(tmp_path, config_name="eval")
    with pytest.raises(Exception, match="ckpt_path"):
        check_config(cfg)


def test_typo_in_override_fails_at_composition(tmp_path):
    with pytest.raises(ConfigCompositionException):
        compose_train(tmp_path, ["model.net.num_stagez=2"])
    with pytest.raises(ConfigCompositionException):
        compose_train(tmp_path, ["model=rsn19"])


def test_quickstart_precision_follows_the_cpu(tmp_path):
    """bf16 autocast only where the CPU computes bf16 natively; the trainer accepts the value."""
    from rsn_lightning.cli.common import cpu_mixed_precision

    cfg = compose_train(tmp_path, ["experiment=quickstart"])
    assert cfg.trainer.precision == cpu_mixed_precision()
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cfg.trainer.precision == ("bf16-mixed" if native else "32-true")
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, enable_model_summary=False)
    assert trainer.precision == cfg.trainer.precision
