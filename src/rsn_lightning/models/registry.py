"""Named RSN presets: ``create_model("rsn50")``, ``list_models()``."""

from __future__ import annotations

from rsn_lightning.models.rsn import RSN

_RSN50 = (3, 4, 6, 3)

# The paper's models (Table 1/3/5 of Cai et al. 2020), all with the PRM, plus a CPU quickstart model.
PRESETS: dict[str, dict] = {
    "rsn18": dict(num_stages=1, blocks=(2, 2, 2, 2)),
    "rsn50": dict(num_stages=1, blocks=_RSN50),
    "rsn101": dict(num_stages=1, blocks=(3, 4, 23, 3)),
    "2xrsn50": dict(num_stages=2, blocks=_RSN50),
    "3xrsn50": dict(num_stages=3, blocks=_RSN50),
    "4xrsn50": dict(num_stages=4, blocks=_RSN50),
    # Same blocks and recipe cut down to train in minutes on a laptop CPU at 128x96 (see the README).
    "rsn_tiny": dict(
        num_stages=1, blocks=(1, 1, 1, 1), width_mult=0.5, stem_channels=32, decoder_channels=64
    ),
}


def list_models() -> list[str]:
    return list(PRESETS)


def preset_config(name: str) -> dict:
    """The constructor arguments of a preset (all of them, as ``RSN.arch_config`` gives)."""
    return create_model(name).arch_config()


def create_model(name: str, **overrides) -> RSN:
    """Build a preset, e.g. ``create_model("rsn18", num_keypoints=16)`` for MPII."""
    key = name.lower().replace("-", "").replace("_", "") if name not in PRESETS else name
    aliases = {k.replace("_", ""): k for k in PRESETS}
    if key not in PRESETS and key not in aliases:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    return RSN(**{**PRESETS[aliases.get(key, key)], **overrides})
