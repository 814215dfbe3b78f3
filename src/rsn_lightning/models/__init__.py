"""The Residual Steps Network: building blocks, presets, checkpoints and converters."""

from rsn_lightning.models.checkpoint import load_checkpoint_dict, load_model, save_checkpoint
from rsn_lightning.models.flops import complexity, count_macs, count_params
from rsn_lightning.models.prm import PoseRefineMachine
from rsn_lightning.models.registry import create_model, list_models
from rsn_lightning.models.rsb import ResidualStepsBlock
from rsn_lightning.models.rsn import RSN
from rsn_lightning.models.tta import EnsembleNet, flip_heatmaps, flip_test

__all__ = [
    "RSN",
    "ResidualStepsBlock",
    "PoseRefineMachine",
    "create_model",
    "list_models",
    "save_checkpoint",
    "load_model",
    "load_checkpoint_dict",
    "complexity",
    "count_macs",
    "count_params",
    "EnsembleNet",
    "flip_heatmaps",
    "flip_test",
]
