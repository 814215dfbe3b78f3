"""rsn-predict: pose prediction on images, folders and videos (a Hydra app over ``Predictor``)."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from rsn_lightning.cli.common import config_dir
from rsn_lightning.config_checks import exit_on_bad_input, validate_config

log = logging.getLogger(__name__)


def predict(cfg: DictConfig):
    from rsn_lightning.inference.predictor import Predictor

    validate_config(cfg, "predict")
    inputs = list(cfg.input) if isinstance(cfg.input, ListConfig) else cfg.input
    input_size = OmegaConf.to_container(cfg.input_size) if cfg.input_size is not None else None
    predictor = Predictor(
        cfg.ckpt_path, device=cfg.device, batch_size=cfg.batch_size, flip=cfg.flip, flip_shift=cfg.flip_shift,
        input_size=input_size, decode=cfg.decode, blur_kernel=cfg.blur_kernel, shift=cfg.shift,
        x_ext=cfg.x_ext, y_ext=cfg.y_ext, rescore=cfg.rescore, score_threshold=cfg.score_threshold,
        oks_nms=cfg.oks_nms, nms_threshold=cfg.nms_threshold, det_score_thr=cfg.det_score_thr,
        category_id=cfg.category_id,
    )
    log.info("predicting on %s with %s (input %sx%s, flip test %s, %s decoding)", predictor.device, cfg.ckpt_path,
             *predictor.input_size, "on" if predictor.flip else "off", predictor.decode)
    run = predictor.run(inputs, cfg.output_dir, detections=cfg.detections, image_ids=cfg.image_ids,
                        draw=cfg.draw, score_thr=cfg.score_thr, results_name=cfg.results_name)
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


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
@exit_on_bad_input
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
