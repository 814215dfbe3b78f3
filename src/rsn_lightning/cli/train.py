"""rsn-train: the Hydra training app (train, then evaluate the last or the best checkpoint)."""

from __future__ import annotations

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
from rsn_lightning.cli.config_checks import exit_on_bad_input, resolve_last_checkpoint, validate_config
from rsn_lightning.cli.eval_checkpoint import eval_checkpoint
from rsn_lightning.training.job_record import TrainingJobRecord
from rsn_lightning.training.launch import relaunch_ranks_as_this_job, requeued_checkpoint
from rsn_lightning.training.validators import module_inputs

log = logging.getLogger(__name__)


def train(cfg: DictConfig, record: TrainingJobRecord | None = None) -> tuple[dict, dict]:
    """Train and/or evaluate as the config says; returns (metrics, paths)."""
    from hydra.utils import instantiate

    validate_config(cfg, "train")
    start_run(cfg)
    if record is not None:
        record.share_machine(cfg)
    ckpt_path = resolve_last_checkpoint(cfg) or requeued_checkpoint(cfg.paths.output_dir)
    unfinished = record.unfinished_checkpoint() if record is not None and ckpt_path is None else None
    relaunch_ranks_as_this_job(resume_from=unfinished)
    ckpt_path = ckpt_path or unfinished

    # one codec: the DataModule encodes the targets with it, the module decodes with it, checkpoints record it
    codec = instantiate(cfg.codec)
    datamodule = instantiate(cfg.data, codec=codec)
    # _partial_: the data-derived arguments are objects that Hydra must not turn into config nodes
    model = instantiate(cfg.model, _partial_=True)(codec=codec, **module_inputs(datamodule))
    callbacks = instantiate_group(cfg.get("callbacks")) + ([record.callback] if record else [])
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        if cfg.get("eval_checkpoint", "last") == "best" and (unvalidated := _unvalidated_final_epochs(trainer)):
            log.warning("trainer.max_epochs=%s is not a multiple of trainer.check_val_every_n_epoch=%s: the last "
                        "%d epoch(s) are never validated, and eval_checkpoint=best takes the best validated "
                        "checkpoint", trainer.max_epochs, trainer.check_val_every_n_epoch, unvalidated)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    best, evaluated, evaluated_ckpt = "", "", None
    if trainer.checkpoint_callback is not None:
        best = trainer.checkpoint_callback.best_model_path or ""
    if cfg.get("test", False):
        evaluated_ckpt, evaluated = eval_checkpoint(
            trainer, cfg.get("eval_checkpoint", "last"), cfg.get("train", True), ckpt_path)
        log.info("evaluating %s", evaluated_ckpt or evaluated)
        trainer.validate(model, datamodule=datamodule, ckpt_path=evaluated_ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    output_dir = Path(cfg.paths.output_dir)
    paths = {
        "output_dir": str(output_dir),
        "checkpoint": evaluated_ckpt or best,
        # the best-validated checkpoint is kept either way; labelled so it is not mistaken for the reported one
        "best_on_val": best,
        "results": str(output_dir / "results"),
        "pictures": str(output_dir / "pictures"),
        "evaluated": evaluated,
    }
    return metrics, paths


def _unvalidated_final_epochs(trainer) -> int:
    every, epochs = trainer.check_val_every_n_epoch, trainer.max_epochs
    if not every or not epochs or epochs < 0 or trainer.limit_val_batches == 0:
        return 0
    return epochs % every


def _report_title(evaluated: str, checkpoint: str) -> str:
    if not evaluated:
        return "Training finished (no evaluation)"
    return f"Validation ({evaluated})"


register_resolvers()  # before Hydra composes the config


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@exit_on_bad_input
def main(cfg: DictConfig) -> float | None:
    metrics = {}
    # job_result.json (also on failure), the wandb run finished; in a multirun a failure does not stop the sweep
    with TrainingJobRecord(cfg) as record:
        if (earlier := record.finished_before()) is not None:  # a resumed sweep: this job is done
            return (earlier.get("final") or {}).get(str(cfg.get("monitor", "val/AP")).split("/", 1)[-1])
        metrics, paths = train(cfg, record)
        record.done(metrics, paths["checkpoint"])
        print_report(metrics, paths, _report_title(paths.pop("evaluated"), paths["checkpoint"]))
    # the value an hparams_search sweeper optimises
    return metrics.get(cfg.get("monitor", "val/AP"))


if __name__ == "__main__":
    main()
