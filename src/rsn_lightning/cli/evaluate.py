"""rsn-eval: evaluate a checkpoint (this project's Lightning .ckpt or an rsn-convert output) on a
dataset, write the COCO results JSON and print the AP (or PCKh) table."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rsn_lightning.cli.common import config_dir, instantiate_group, instantiate_trainer, print_report, start_run
from rsn_lightning.cli.sweep_job import JobRecord
from rsn_lightning.config_checks import exit_on_bad_input, validate_config

log = logging.getLogger(__name__)


def settings_unlike_checkpoint(net, cfg: DictConfig) -> list[str]:
    """The evaluation settings that differ from what the checkpoint was validated with (empty for
    converted checkpoints, which record none)."""
    diffs = []
    recorded_size = getattr(net, "input_size", None)
    if recorded_size and list(recorded_size) != list(cfg.data.input_size):
        diffs.append(f"data.input_size={list(cfg.data.input_size)} (checkpoint: {list(recorded_size)})")
    test = cfg.model.get("test") or {}
    recorded = {k: v for k, v in net.codec.to_dict().items() if k in ("decode", "blur_kernel", "shift")}
    for key, value in {**recorded, **(getattr(net, "test_settings", None) or {})}.items():
        if key in test and test[key] != value:
            diffs.append(f"model.test.{key}={test[key]} (checkpoint: {value})")
    return diffs


def evaluate(cfg: DictConfig, record: JobRecord | None = None) -> tuple[dict, dict]:
    from hydra.utils import instantiate

    from rsn_lightning import load_model

    validate_config(cfg, "eval")
    start_run(cfg)
    net = load_model(cfg.ckpt_path)
    diffs = settings_unlike_checkpoint(net, cfg)
    if diffs:
        log.warning("evaluating %s unlike its own validation: %s. Pass the experiment it was trained with "
                    "(e.g. experiment=quickstart) or these overrides to match.", cfg.ckpt_path, "; ".join(diffs))
    # the checkpoint says how its inputs were normalised (the authors' BGR or mmpose's RGB)
    datamodule = instantiate(cfg.data, normalization=net.normalization.to_dict())
    spec = getattr(datamodule, "keypoint_spec", None)
    num_out = net.arch_config().get("num_keypoints")
    if spec is not None and num_out is not None and spec.num_keypoints != num_out:
        raise ValueError(
            f"{cfg.ckpt_path} predicts {num_out} keypoints but the dataset '{spec.name}' has "
            f"{spec.num_keypoints}: pick the matching data config"
        )
    module = instantiate(cfg.model, net=net)  # the checkpoint's network with model's settings (conf/model)
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
