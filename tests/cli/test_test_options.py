"""The evaluation options the README names are settable from the command line (they were rejected as
"not in struct") and reach the LightningModule; their config defaults are the authors'."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from test_configs import compose_train

from rsn_lightning.test_settings import authors_test_settings
from rsn_lightning.training.validators import module_inputs

OPTIONS = ["model.test.oks_nms=soft", "model.test.rescore=mmpose", "model.test.score_threshold=0.3"]


@pytest.mark.parametrize("experiment", ["quickstart", "mpii_4xrsn50_256x256"])
def test_rescore_and_oks_nms_overrides_compose(experiment, tmp_path):
    cfg = compose_train(tmp_path, [f"experiment={experiment}", *OPTIONS])
    assert (cfg.model.test.oks_nms, cfg.model.test.rescore, cfg.model.test.score_threshold) == ("soft", "mmpose", 0.3)


def test_rescore_and_oks_nms_reach_the_module(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=quickstart", *OPTIONS])
    codec = instantiate(cfg.codec)
    datamodule = instantiate(cfg.data, codec=codec)
    module = instantiate(cfg.model, _partial_=True)(codec=codec, **module_inputs(datamodule))
    assert (module.test_cfg["oks_nms"], module.test_cfg["rescore"], module.test_cfg["score_threshold"]) == (
        "soft", "mmpose", 0.3)


def test_config_defaults_are_the_authors(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=coco_rsn18_256x192"])
    keys = ("rescore", "score_threshold", "oks_nms")
    assert {k: cfg.model.test[k] for k in keys} == {k: authors_test_settings("coco")[k] for k in keys}
