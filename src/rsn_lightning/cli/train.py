"""rsn-train: the Hydra training app (train, then evaluate the best checkpoint)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rsn_lightning.cli.common import config_dir, instantiate_group, instantiate_trainer, print_report, start_run

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Train and/or evaluate as the config says; returns (metrics, paths)."""
    from hydra.utils import instantiate

    start_run(cfg)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        if unvalidated := _unvalidated_final_epochs(trainer):
            log.warning("trainer.max_epochs=%s is not a multiple of trainer.check_val_every_n_epoch=%s: the last "
                        "%d epoch(s) are never validated, and the final evaluation takes the best validated "
                        "checkpoint", trainer.max_epochs, trainer.check_val_every_n_epoch, unvalidated)
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    best, evaluated = "", ""
    if trainer.checkpoint_callback is not None:
        best = trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path or ""
    if cfg.get("test", False):
        ckpt = best if best else (None if cfg.get("train", True) else cfg.get("ckpt_path"))
        evaluated = ckpt or ("the trained weights in memory" if cfg.get("train", True) else "untrained weights")
        log.info("evaluating %s", evaluated)
        trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    output_dir = Path(cfg.paths.output_dir)
    paths = {
        "output_dir": str(output_dir),
        "checkpoint": best,
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


def _report_title(evaluated: str, best: str) -> str:
    if not evaluated:
        return "Training finished (no evaluation)"
    if evaluated == best:
        return "Validation (best checkpoint)"
    return f"Validation ({Path(evaluated).name if evaluated.endswith('.ckpt') else evaluated})"


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, paths = train(cfg)
    print_report(metrics, paths, _report_title(paths.pop("evaluated"), paths["checkpoint"]))
    # the value an hparams_search sweeper optimises
    return metrics.get(cfg.get("monitor", "val/AP"))


if __name__ == "__main__":
    main()
