"""RSNLitModule outside Hydra for the tests: the settings of conf/model/rsn18.yaml (the one place they are
written; the module has no defaults), with some changed."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.normalization import InputNormalization
from rsn_lightning.training.module import RSNLitModule
from rsn_lightning.training.validators import module_inputs

MODEL_YAML = Path(__file__).resolve().parents[2] / "conf" / "model" / "rsn18.yaml"
SETTINGS = ("optimizer", "scheduler", "loss", "test", "compile", "channels_last", "nonfinite_loss")


def no_validation(*args):
    raise AssertionError("this test's module was built without a DataModule: lit_module(net, datamodule)")


def lit_module(net, datamodule=None, output_dir=None, **changes) -> RSNLitModule:
    """``changes`` to a group are merged into it (``optimizer={"lr": 1e-3}``), others replace the value.
    The data's arguments come from ``datamodule`` (its codec too) as rsn-train passes them; without one,
    COCO keypoints, the authors' normalisation and codec at 64x96, and no validation."""
    if datamodule is not None:
        changes = {"codec": datamodule.codec, **module_inputs(datamodule), **changes}
    else:
        changes = {"codec": HeatmapCodec((64, 96)), "keypoints": COCO_KEYPOINTS, "normalization": InputNormalization(),
                   "validator": no_validation, "batch_size": 8, "box_extension": [0.09, 0.135], **changes}
    yaml = OmegaConf.load(MODEL_YAML)
    settings = {k: OmegaConf.merge(yaml[k], changes.pop(k, {})) if k in ("optimizer", "scheduler", "loss", "test")
                else changes.pop(k, yaml[k]) for k in SETTINGS}
    return RSNLitModule(net=net, output_dir=output_dir, **settings, **changes)
