"""rsn_lightning: Residual Steps Network + Pose Refine Machine with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"


def load_model(path, map_location="cpu"):
    """Load a checkpoint of this project (Lightning .ckpt or converted) as an eval-mode network."""
    # imported lazily so that `import rsn_lightning` stays light (no torch until needed)
    from rsn_lightning.models.checkpoint import load_model as _load_model

    return _load_model(path, map_location=map_location)


__all__ = ["load_model", "__version__"]
