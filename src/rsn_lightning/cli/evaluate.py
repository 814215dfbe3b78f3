"""rsn-eval: evaluate a checkpoint (this project's Lightning .ckpt or an rsn-convert output) on a
dataset, write the COCO results JSON and print the AP (or PCKh) table.

The codec (input size included) and the test-time settings come from the checkpoint, never from the
config's defaults: only values typed on the command line depart from them (``CheckpointSettings``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rsn_lightning.cli.common import (
    config_dir,
    instantiate_group,
    instantiate_trainer,
    print_report,
    register_resolvers,
    start_run,
)
from rsn_lightning.cli.config_checks import exit_on_bad_input, validate_config
from rsn_lightning.codec import HeatmapCodec
from rsn_lightning.training.job_record import TrainingJobRecord as JobRecord
from rsn_lightning.training.validators import module_inputs

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


def evaluate(cfg: DictConfig, record: JobRecord | None = None) -> tuple[dict, dict]:
    from hydra.utils import instantiate

    from rsn_lightning import load_model
    from rsn_lightning.models.fuse import inference_network

    validate_config(cfg, "eval")
    start_run(cfg)
    net = load_model(cfg.ckpt_path)
    settings = CheckpointSettings(net, cfg, typed_overrides())
    codec = settings.codec
    # the checkpoint says how its inputs were normalised (the authors' BGR or mmpose's RGB)
    datamodule = instantiate(cfg.data, input_size=list(codec.input_size), codec=codec,
                             normalization=net.normalization.to_dict())
    settings.apply_box_extension(datamodule)
    settings.log(cfg.ckpt_path)
    spec = getattr(datamodule, "keypoint_spec", None)
    num_out = net.arch_config().get("num_keypoints")
    if spec is not None and num_out is not None and spec.num_keypoints != num_out:
        raise ValueError(
            f"{cfg.ckpt_path} predicts {num_out} keypoints but the dataset '{spec.name}' has "
            f"{spec.num_keypoints}: pick the matching data config"
        )
    # the checkpoint's network as every inference path runs it (BN folded, channels-last: rsn-predict gives
    # the same numbers), its codec and test settings, the training settings of conf/model
    module = instantiate(cfg.model, _partial_=True, net=inference_network(net), test=settings.module_test)(
        codec=codec, **module_inputs(datamodule))
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks")) + ([record.callback] if record else [])
    trainer = instantiate_trainer(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    trainer.validate(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    out = Path(cfg.paths.output_dir)
    paths = {"output_dir": str(out), "results": str(out / "results"), "pictures": str(out / "pictures")}
    if cfg.get("analysis"):
        from rsn_lightning.cli.analyze import analyze_evaluation

        paths["analysis"] = analyze_evaluation(datamodule, out) or "skipped (see the warning)"
    return metrics, paths


register_resolvers()  # before Hydra composes the config


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@exit_on_bad_input
def main(cfg: DictConfig) -> float | None:
    metrics = {}
    with JobRecord(cfg) as record:  # job_result.json, as rsn-train's jobs: rsn-eval -m sweeps get a summary too
        metrics, paths = evaluate(cfg, record)
        record.done(metrics, str(cfg.ckpt_path))
        print_report(metrics, paths, f"Evaluation of {cfg.ckpt_path}")
    return metrics.get(cfg.get("monitor", "val/AP"))


if __name__ == "__main__":
    main()
