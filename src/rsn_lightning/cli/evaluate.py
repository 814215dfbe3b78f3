"""rsn-eval: evaluate a checkpoint (this project's Lightning .ckpt or an rsn-convert output) on a
dataset, write the COCO results JSON and print the AP (or PCKh) table.

The codec (input size included) and the test-time settings come from the checkpoint, never from the
config's defaults: only values typed on the command line depart from them (``CheckpointSettings``)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rsn_lightning.cli.checkpoint_settings import CheckpointSettings, typed_overrides
from rsn_lightning.cli.common import (
    config_dir,
    instantiate_group,
    instantiate_trainer,
    print_report,
    register_resolvers,
    start_run,
)
from rsn_lightning.cli.config_checks import exit_on_bad_input, validate_config
from rsn_lightning.training.job_record import TrainingJobRecord
from rsn_lightning.training.validators import module_inputs

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, record: TrainingJobRecord | None = None) -> tuple[dict, dict]:
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
    with TrainingJobRecord(cfg) as record:  # job_result.json, as rsn-train's jobs: rsn-eval -m sweeps get a summary too
        metrics, paths = evaluate(cfg, record)
        record.done(metrics, str(cfg.ckpt_path))
        print_report(metrics, paths, f"Evaluation of {cfg.ckpt_path}")
    return metrics.get(cfg.get("monitor", "val/AP"))


if __name__ == "__main__":
    main()
