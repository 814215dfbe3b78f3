"""RSNLitModule outside Hydra for the tests: the settings of conf/model/rsn18.yaml (the one place they are
written; the module has no defaults), with some changed."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from rsn_lightning.training.module import RSNLitModule

MODEL_YAML = Path(__file__).resolve().parents[2] / "conf" / "model" / "rsn18.yaml"
SETTINGS = ("optimizer", "scheduler", "loss", "test", "compile", "channels_last", "nonfinite_loss")


def lit_module(net, output_dir=None, **changes) -> RSNLitModule:
    """``changes`` to a group are merged into it (``optimizer={"lr": 1e-3}``), others replace the value."""
    yaml = OmegaConf.load(MODEL_YAML)
    settings = {k: OmegaConf.merge(yaml[k], changes.pop(k, {})) if k in ("optimizer", "scheduler", "loss", "test")
                else changes.pop(k, yaml[k]) for k in SETTINGS}
    return RSNLitModule(net=net, output_dir=output_dir, **settings, **changes)
