"""Convert the authors' (caiyuanhao1998/RSN) and mmpose's RSN checkpoints into this project's format.

    rsn-convert --from official RSN18.pth rsn18_coco.pth
    rsn-convert --from mmpose rsn18_coco_256x192.pth rsn18_coco.pth

The architecture (stages, blocks per layer, widths, keypoints, PRM, conv bias) is read off the keys
and shapes; the weights are renamed key by key and loaded strictly, so a checkpoint this code does not
understand is refused instead of half-loaded. The result records the input normalisation the weights
were trained with: BGR for the authors', RGB for mmpose's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from rsn_lightning.codec import authors_codec
from rsn_lightning.models.checkpoint import load_state_dict_strict, save_checkpoint
from rsn_lightning.models.rsb import branch_width
from rsn_lightning.models.rsn import BASE_CHANNELS, RSN
from rsn_lightning.normalization import AUTHORS_NORMALIZATION, MMPOSE_NORMALIZATION, InputNormalization
from rsn_lightning.test_settings import authors_test_settings

DEFAULT_BRANCH_RATIO = 26 / 64
SOURCES = ("official", "mmpose")
_KEYPOINT_SETS = {17: "coco", 16: "mpii"}

# names inside one RSB / upsample unit: theirs -> ours
_BLOCK_PARTS = {
    "conv_bn_relu1": "conv_in",
    "conv_bn_relu3": "conv_out",
    "conv_bn3": "conv_out",
    "downsample": "shortcut",
}
_UNIT_PARTS = {
    "u_skip": "lateral",
    "in_skip": "lateral",
    "up_conv": "up_conv",
    "skip1": "skip_enc",
    "out_skip1": "skip_enc",
    "skip2": "skip_dec",
    "out_skip2": "skip_dec",
    "cross_conv": "cross_conv",
    "res_conv1": "head.0",
    "res_conv2": "head.1",
}
_PRM_PARTS = {
    "conv_bn_relu_prm_1": "conv",
    "conv_bn_relu_prm_2_1": "channel_att.0",
    "conv_bn_relu_prm_2_2": "channel_att.1",
    "conv_bn_relu_prm_3_1": "spatial_att.0",
    "conv_bn_relu_prm_3_2": "spatial_att.1",
}


def _block_key(stage: str, layer: str, block: str, rest: str) -> str | None:
    part, _, tail = rest.partition(".")
    step = re.fullmatch(r"conv_bn_relu2_(\d+)_(\d+)", part)
    if step:
        name = f"steps.{int(step[1]) - 1}.{int(step[2]) - 1}"
    elif part in _BLOCK_PARTS:
        name = _BLOCK_PARTS[part]
    else:
        return None
    return f"stages.{stage}.encoder.layers.{int(layer) - 1}.{block}.{name}.{tail}"


def _unit_key(stage: int, unit: int, rest: str) -> str | None:
    part, _, tail = rest.partition(".")
    if part not in _UNIT_PARTS:
        return None
    return f"stages.{stage}.decoder.units.{unit}.{_UNIT_PARTS[part]}.{tail}"


def _official_key(key: str, num_units: int) -> str | None:
    if key.startswith("top.conv."):
        return "stem.conv." + key[len("top.conv.") :]
    m = re.fullmatch(r"stage(\d+)\.downsample\.layer(\d+)\.(\d+)\.(.+)", key)
    if m:
        return _block_key(*m.groups())
    m = re.fullmatch(r"stage(\d+)\.upsample\.up(\d+)\.(.+)", key)
    if m:
        return _unit_key(int(m[1]), int(m[2]) - 1, m[3])
    m = re.fullmatch(r"prm\.([a-z0-9_]+)\.(.+)", key)
    if m and m[1] in _PRM_PARTS:
        return f"prm.{_PRM_PARTS[m[1]]}.{m[2]}"
    return None


def _mmpose_key(key: str, num_units: int) -> str | None:
    if key.startswith("backbone.top.top.0."):
        return "stem.conv." + key[len("backbone.top.top.0.") :]
    m = re.fullmatch(r"backbone\.multi_stage_rsn\.(\d+)\.downsample\.layer(\d+)\.(\d+)\.(.+)", key)
    if m:
        return _block_key(*m.groups())
    m = re.fullmatch(r"backbone\.multi_stage_rsn\.(\d+)\.upsample\.up(\d+)\.(.+)", key)
    if m:
        return _unit_key(int(m[1]), int(m[2]) - 1, m[3])
    m = re.fullmatch(r"head\.predict_layers\.(\d+)\.conv_layers\.([01])\.(.+)", key)
    if m:
        i = int(m[1])
        return f"stages.{i // num_units}.decoder.units.{i % num_units}.head.{m[2]}.{m[3]}"
    return None


_RENAMERS: dict[str, Callable[[str, int], str | None]] = {"official": _official_key, "mmpose": _mmpose_key}
_NORMALIZATION: dict[str, InputNormalization] = {
    "official": AUTHORS_NORMALIZATION,
    "mmpose": MMPOSE_NORMALIZATION,
}


def extract_state_dict(ckpt: Mapping, source: str) -> dict[str, torch.Tensor]:
    """The raw state dict inside a checkpoint of ``source``, without DataParallel's ``module.`` prefix."""
    if source == "official":
        sd = ckpt.get("model", ckpt.get("state_dict", ckpt))
    else:
        sd = ckpt.get("state_dict", ckpt)
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError(f"no state dict found in the {source} checkpoint (top-level keys {list(ckpt)[:8]})")
    return {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in sd.items()
        if isinstance(v, torch.Tensor)
    }


def rename_state_dict(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename the keys of an authors' (``official``) or ``mmpose`` RSN state dict to this project's."""
    if source not in _RENAMERS:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    if source == "mmpose":
        prm_keys = [k for k in state_dict if ".prm." in k]
        if prm_keys:
            raise ValueError(
                f"mmpose checkpoints with use_prm=True are not supported (e.g. {prm_keys[0]}): mmpose's PRM "
                "(one per unit, Linear/BN1d channel path, 1-channel spatial map) is not the authors' PRM"
            )
    num_units = max((int(m[1]) for k in state_dict if (m := re.search(r"\.up(\d+)\.", k))), default=4)
    out, unknown = {}, []
    for key, value in state_dict.items():
        new = _RENAMERS[source](key, num_units)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} keys of the {source} checkpoint are not RSN weights this converter "
            f"knows: {unknown[:5]}"
        )
    return out


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """RSN constructor arguments from a state dict with this project's key names."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise ValueError(f"cannot infer the architecture: no {key!r} in the state dict")
        return tuple(state_dict[key].shape)

    stages = sorted({int(m[1]) for k in state_dict if (m := re.match(r"stages\.(\d+)\.", k))})
    if not stages or stages != list(range(len(stages))):
        raise ValueError(f"cannot infer the architecture: stage indices {stages}")
    blocks = []
    for layer in range(len(BASE_CHANNELS)):
        prefix = f"stages.0.encoder.layers.{layer}."
        idx = {int(k[len(prefix) :].split(".")[0]) for k in state_dict if k.startswith(prefix)}
        if not idx:
            raise ValueError(f"cannot infer the architecture: no blocks in encoder layer {layer + 1}")
        blocks.append(max(idx) + 1)
    stem = shape("stem.conv.conv.weight")[0]
    width0 = shape("stages.0.encoder.layers.0.0.conv_out.conv.weight")[0]
    width_mult = width0 / BASE_CHANNELS[0]
    branch = shape("stages.0.encoder.layers.0.0.steps.0.0.conv.weight")[0]
    branch_ratio = (
        DEFAULT_BRANCH_RATIO if branch_width(stem, DEFAULT_BRANCH_RATIO) == branch else branch / stem
    )
    num_branches = len(
        {
            k.split(".steps.")[1].split(".")[0]
            for k in state_dict
            if k.startswith("stages.0.encoder.layers.0.0.steps.")
        }
    )
    return dict(
        num_stages=len(stages),
        blocks=blocks,
        num_keypoints=shape("stages.0.decoder.units.0.head.1.conv.weight")[0],
        width_mult=width_mult,
        stem_channels=stem,
        decoder_channels=shape("stages.0.decoder.units.0.lateral.conv.weight")[0],
        num_branches=num_branches,
        branch_ratio=branch_ratio,
        prm=_prm_placement(state_dict),
        conv_bias="stem.conv.conv.bias" in state_dict,
    )


def _prm_placement(state_dict: Mapping[str, torch.Tensor]) -> str:
    if any(k.startswith("coarse_unit_prms.") for k in state_dict):
        return "last_stage"
    return "last_unit" if any(k.startswith("prm.") for k in state_dict) else "none"


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], source: str) -> RSN:
    """An eval-mode RSN holding exactly the weights of an authors' or mmpose state dict."""
    ours = rename_state_dict(state_dict, source)
    net = RSN(**infer_arch(ours))
    load_state_dict_strict(net, ours, source=f"{source} state dict")
    return net.eval()


def convert_checkpoint(src: str | Path, dst: str | Path, source: str, keypoints: str | None = None,
                       input_size=None) -> RSN:
    """Convert and save; the file records the authors' codec and test-time settings for its keypoint set
    (``authors_codec``, ``authors_test_settings``), at ``input_size`` (W, H; default the authors')."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    net = convert_state_dict(extract_state_dict(ckpt, source), source)
    keypoints = keypoints or _KEYPOINT_SETS.get(net.num_keypoints)
    if keypoints is None:
        raise ValueError(f"{net.num_keypoints} keypoints: name the keypoint set with --keypoints")
    codec = authors_codec(keypoints, input_size)
    test_settings = authors_test_settings(keypoints)
    save_checkpoint(dst, net, normalization=_NORMALIZATION[source], keypoints=keypoints, codec=codec,
                    test_settings=test_settings)
    net.normalization, net.keypoints = _NORMALIZATION[source], keypoints
    net.codec, net.input_size, net.test_settings = codec, codec.input_size, test_settings
    return net
