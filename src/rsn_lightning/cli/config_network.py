"""Config checks of the network and its codec (``codec.*``, ``model.*``)."""

from __future__ import annotations

from omegaconf import OmegaConf

from rsn_lightning.cli.config_values import ABSENT, Problems, get_value, is_int
from rsn_lightning.models.checkpoint import ARCH_LIMITS, MAX_BLOCKS

MOVED_TO_CODEC = {"data.target_type": "codec.target_type", "data.target_kernels": "codec.kernels",
                  "data.target_sigma": "codec.sigma", "model.test.decode": "codec.decode",
                  "model.test.blur_kernel": "codec.blur_kernel", "model.test.shift": "codec.shift"}


def check_codec(cfg, p: Problems) -> None:
    from rsn_lightning.codec import METHODS, TARGET_TYPES, CodecError, HeatmapCodec

    for old, new in MOVED_TO_CODEC.items():
        if OmegaConf.select(cfg, old, default=ABSENT) is not ABSENT:
            p.append(f"{old}: this key moved to {new} (the codec group, conf/codec/: codec=authors or codec=dark)")
    if get_value(cfg, "codec") is None:
        return
    found = len(p)
    p.one_of(cfg, "codec.target_type", TARGET_TYPES, optional=False)
    p.one_of(cfg, "codec.decode", METHODS, optional=False)
    p.odd_kernels(cfg, "codec.kernels")
    if not OmegaConf.is_interpolation(cfg.codec, "input_size"):  # else data.input_size, checked there
        p.input_size(cfg, "codec.input_size")
        size, data_size = get_value(cfg, "codec.input_size"), get_value(cfg, "data.input_size")
        if size is not None and data_size is not None and list(size) != list(data_size):
            p.append(f"codec.input_size={list(size)}: expected data.input_size={list(data_size)}, the crops it "
                     "encodes and decodes (leave codec.input_size at ${data.input_size})")
    blur = get_value(cfg, "codec.blur_kernel")
    p.check(is_int(blur) and (blur == 0 or (blur > 0 and blur % 2 == 1)), "codec.blur_kernel", blur,
            "0 (no blur) or an odd positive integer")
    p.number_in(cfg, "codec.shift", 0.0, 1.0)
    if len(p) == found and get_value(cfg, "data.input_size") is not None:
        # the pair and the sizes, as the codec itself checks them when it is built
        fields = OmegaConf.to_container(cfg.codec, resolve=True)
        try:
            HeatmapCodec(**{k: v for k, v in fields.items() if not k.startswith("_")})
        except (CodecError, TypeError, ValueError) as err:
            p.append(str(err))


def check_model(cfg, p: Problems, network_from_config: bool = True) -> None:
    if get_value(cfg, "model") is None:
        return
    # null architecture keys take the preset's value (models/registry.py), checked there
    preset = get_value(cfg, "model.net.name")
    if preset is not None:
        from rsn_lightning.models.registry import list_models, preset_config

        try:
            preset = preset_config(preset)
        except ValueError:
            p.check(False, "model.net.name", preset, f"one of {list_models()}")
            preset = None
    for key, (low, high) in ARCH_LIMITS.items():
        if key == "width_mult":
            p.number_in(cfg, f"model.net.{key}", low, high, low_open=True)
        else:
            v = get_value(cfg, f"model.net.{key}")
            if v is not None:
                p.check(is_int(v) and low <= v <= high, f"model.net.{key}", v, f"an integer in [{low}, {high}]")
    blocks = get_value(cfg, "model.net.blocks")
    if blocks is not None:
        b = list(blocks)
        p.check(len(b) == 4 and all(is_int(x) and 1 <= x <= MAX_BLOCKS for x in b), "model.net.blocks", b,
                f"4 integers in [1, {MAX_BLOCKS}] (RSBs per encoder level)")
    p.number_in(cfg, "model.optimizer.lr", 0.0, 10.0, low_open=True)
    p.number_in(cfg, "model.optimizer.weight_decay", 0.0, 1.0)
    p.one_of(cfg, "model.nonfinite_loss", ("stop", "skip"))
    # the network's keypoints against the data's (named sets only: 'auto' is read from the data later);
    # rsn-eval's network is the checkpoint's, which it checks against the data itself
    k_model, kp = get_value(cfg, "model.net.num_keypoints"), get_value(cfg, "data.keypoints")
    if not network_from_config:
        return
    if k_model is None and preset is not None:
        k_model = preset["num_keypoints"]
    if is_int(k_model) and isinstance(kp, str) and kp != "auto":
        from rsn_lightning.keypoints import get_keypoint_spec

        try:
            k_data = get_keypoint_spec(kp).num_keypoints
        except (KeyError, ValueError) as err:
            p.append(f"data.keypoints={kp!r}: {err}")
        else:
            p.check(k_model == k_data, "model.net.num_keypoints", k_model,
                    f"{k_data}, the number of keypoints of data.keypoints={kp!r}")
