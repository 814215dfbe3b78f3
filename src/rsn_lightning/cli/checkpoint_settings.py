"""What rsn-eval evaluates a checkpoint with: its recorded codec and test-time settings, except the
values typed on the command line (Hydra's task overrides), which win and are logged as departures."""

from __future__ import annotations

import dataclasses
import logging

from omegaconf import DictConfig, OmegaConf

from rsn_lightning.codec import HeatmapCodec

log = logging.getLogger(__name__)


def typed_overrides() -> set[str]:
    """The keys (and config groups) typed on the command line: Hydra's task overrides, parsed by Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return set()
    task = list(HydraConfig.get().overrides.task)
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(task)}


class CheckpointSettings:
    """What ``rsn-eval`` evaluates a checkpoint with: its own codec (input size included) and test-time
    settings, except values typed on the command line (``codec.*`` or ``codec=<name>``, ``data.input_size``,
    ``model.test.*``, ``data.augment.test_x_ext``/``test_y_ext`` for the box extension), which win and are
    listed in ``departures``. Config values that merely differ (an experiment's, a config group's default)
    are listed in ``ignored`` and not used."""

    def __init__(self, net, cfg: DictConfig, typed: set[str]):
        self.typed = typed
        self.departures: list[str] = []
        self.ignored: list[str] = []
        configured = {k: v for k, v in OmegaConf.to_container(cfg.codec, resolve=True).items()
                      if not k.startswith("_")}
        codec = {}
        for field, recorded in net.codec.to_dict().items():
            if field == "input_size":
                key, explicit = "data.input_size", bool({"data.input_size", "codec.input_size"} & typed)
            else:
                key, explicit = f"codec.{field}", bool({f"codec.{field}", "codec"} & typed)
            codec[field] = self._choose(key, recorded, configured.get(field, recorded), explicit)
        self.codec = HeatmapCodec.from_dict(codec, source="rsn-eval's codec")
        test_cfg = OmegaConf.to_container(cfg.model.get("test") or OmegaConf.create({}), resolve=True)
        self.test = {k: self._choose(f"model.test.{k}", v, test_cfg.get(k, v), f"model.test.{k}" in typed)
                     for k, v in net.test_settings.items() if k != "box_extension"}
        # the module's other test keys (e.g. how many validation pictures to draw) are the config's
        self.module_test = {**{k: v for k, v in test_cfg.items() if k not in net.test_settings}, **self.test}
        self.box_extension = list(net.test_settings["box_extension"])

    def _choose(self, key: str, recorded, configured, explicit: bool):
        if _plain(configured) == _plain(recorded):
            return recorded
        (self.departures if explicit else self.ignored).append(f"{key}={_plain(configured)} (checkpoint: "
                                                               f"{_plain(recorded)})")
        return configured if explicit else recorded

    def apply_box_extension(self, datamodule) -> None:
        """The checkpoint's test box extension on the DataModule's crops, unless one was typed."""
        augment = datamodule.augment
        explicit = bool({"data.augment", "data.augment.test_x_ext", "data.augment.test_y_ext"} & self.typed)
        x, y = self._choose("data.augment.test_x_ext/test_y_ext", self.box_extension,
                            [augment.test_x_ext, augment.test_y_ext], explicit)
        datamodule.augment = dataclasses.replace(augment, test_x_ext=float(x), test_y_ext=float(y))

    def log(self, ckpt_path) -> None:
        if self.departures:
            log.warning("evaluating %s unlike its own validation, as typed on the command line: %s", ckpt_path,
                        "; ".join(self.departures))
        if self.ignored:
            log.info("%s is evaluated with its own codec and test settings; config values unlike them are ignored "
                     "(type them on the command line to use them): %s", ckpt_path, "; ".join(self.ignored))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
