"""rsn-predict: pose prediction on images, folders and videos (a Hydra app over ``inference.Predictor`` and
``inference.predict_files.run_predictions``, whose doc says what is written, skipped and how images get ids)."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from rsn_lightning.allocator import keep_freed_memory
from rsn_lightning.cli.common import config_dir, register_resolvers
from rsn_lightning.cli.config_checks import exit_on_bad_input, validate_config
from rsn_lightning.inference.predict_files import PredictionRun, run_predictions
from rsn_lightning.inference.predictor import Predictor

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> PredictionRun:
    validate_config(cfg, "predict")
    log.info("memory allocator: %s", keep_freed_memory(cfg.device))
    inputs = list(cfg.input) if isinstance(cfg.input, ListConfig) else cfg.input
    test = {k: OmegaConf.to_container(v) if isinstance(v, ListConfig) else v for k, v in cfg.test.items()}
    predictor = Predictor(cfg.ckpt_path, device=cfg.device, batch_size=cfg.batch_size,
                          codec=OmegaConf.to_container(cfg.codec), **test)
    log.info("predicting on %s with %s (%s)", predictor.device, cfg.ckpt_path, predictor.describe())
    run = run_predictions(predictor, inputs, cfg.output_dir, detections=cfg.detections, image_ids=cfg.image_ids,
                          draw=cfg.draw, score_thr=cfg.score_thr, results_name=cfg.results_name,
                          category_id=cfg.category_id, det_score_thr=cfg.det_score_thr)
    print(f"{run.num_people} people in {run.num_images} images/frames")
    print(f"results JSON: {run.results_path}")
    if run.pictures:
        print(f"pictures:     {run.pictures[0].parent} ({len(run.pictures)} PNG)")
    for v in run.videos:
        print(f"video:        {v}")
    if run.skipped:
        print(f"skipped {len(run.skipped)} unreadable files or unusable boxes (e.g. {run.skipped[0]['file_name']}: "
              f"{run.skipped[0]['reason']}): listed in {run.skipped_path}")
    if run.images_without_boxes:
        print(f"no person boxes for {len(run.images_without_boxes)} images/frames (e.g. "
              f"{run.images_without_boxes[0]}): nothing predicted there")
    return run


register_resolvers()  # before Hydra composes the config


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
@exit_on_bad_input
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
