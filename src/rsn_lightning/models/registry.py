"""Named RSN presets, each complete: ``create_model("rsn50")``, ``preset_config("rsn50")``, ``list_models()``.

The one place a preset is defined: ``conf/model/<name>.yaml`` names it (``net.name``) and leaves every
architecture key ``null``, which means "the preset's value".
"""

from __future__ import annotations

from rsn_lightning.models.rsn import RSN

_RSN50 = (3, 4, 6, 3)

# What the paper's models share: the authors' widths, RSB branches and init, with the PRM.
_PAPER = dict(
    num_stages=1,
    blocks=(2, 2, 2, 2),
    num_keypoints=17,
    width_mult=1.0,
    stem_channels=64,
    decoder_channels=256,
    num_branches=4,
    branch_ratio=26 / 64,  # the RSB branch width / block input width of the paper
    # PRM placement (the paper's ablation): last_unit is this library's reading of the paper; the
    # released code never applies a PRM (see models/rsn.py)
    prm="last_unit",
    # recompute each RSB/upsample unit in backward (the authors' run_efficient): less memory, more compute
    checkpoint_activations=False,
    conv_bias=False,  # a bias before BN is redundant; the converter turns it on for the authors' weights
    output_gain=1.0,
    init="authors",  # Kaiming-normal on the encoders only, as the authors' network.py
)

# The paper's models (Table 1/3/5 of Cai et al. 2020), plus a CPU quickstart model.
PRESETS: dict[str, dict] = {
    "rsn18": _PAPER,
    "rsn50": {**_PAPER, "blocks": _RSN50},
    "rsn101": {**_PAPER, "blocks": (3, 4, 23, 3)},
    "2xrsn50": {**_PAPER, "num_stages": 2, "blocks": _RSN50},
    "3xrsn50": {**_PAPER, "num_stages": 3, "blocks": _RSN50},
    "4xrsn50": {**_PAPER, "num_stages": 4, "blocks": _RSN50},
    # The same blocks and recipe cut down to train in minutes on a laptop CPU at 128x96, with the
    # settings the quickstart was measured with (README): a few-minute run cannot wait for batch norm
    # to grow the heads to the targets' 255 peaks (output_gain 16), and Kaiming on every conv.
    "rsn_tiny": {
        **_PAPER,
        "blocks": (1, 1, 1, 1),
        "width_mult": 0.5,
        "stem_channels": 32,
        "decoder_channels": 64,
        "output_gain": 16.0,
        "init": "kaiming",
    },
}


def list_models() -> list[str]:
    return list(PRESETS)


def _preset_name(name: str) -> str:
    if name in PRESETS:
        return name
    aliases = {k.replace("_", ""): k for k in PRESETS}
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in aliases:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    return aliases[key]


def preset_config(name: str, **overrides) -> dict:
    """Every constructor argument of preset ``name`` with ``overrides`` applied; an override of None
    keeps the preset's value (a config's ``null``)."""
    unknown = set(overrides) - set(_PAPER) - {"use_prm", "efficient"}
    if unknown:
        raise TypeError(f"unknown RSN argument(s) {sorted(unknown)}; expected some of {sorted(_PAPER)}")
    return {**PRESETS[_preset_name(name)], **{k: v for k, v in overrides.items() if v is not None}}


def create_model(name: str, **overrides) -> RSN:
    """Build a preset, e.g. ``create_model("rsn18", num_keypoints=16)`` for MPII; None keeps the preset's value."""
    return RSN(**preset_config(name, **overrides))
