"""What the LightningModule knows of the data, handed to it by the apps (``module_inputs``) like the
codec: the keypoint set, the input normalisation, the box extension and batch size, and the validator
that scores a validation's predictions. The module never reads ``trainer.datamodule``, so a module
built without these fails at construction, not with COCO numbers on another dataset."""

from __future__ import annotations

from pathlib import Path

from rsn_lightning.evaluation.validation import coco_validation, mpii_validation


class CocoValidator:
    """COCO keypoint AP/AR of the predictions against the DataModule's val annotations (known once its
    ``prepare_data`` has run: the synthetic set is written there), with the module's test settings."""

    def __init__(self, datamodule):
        self.datamodule = datamodule

    def __call__(self, preds: dict, test: dict, results_path: Path) -> dict:
        dm = self.datamodule
        return coco_validation(preds, dm.val_ann_file, dm.keypoint_spec.sigmas, test["rescore"],
                               test["score_threshold"], test["oks_nms"], test["nms_threshold"],
                               results_path=results_path)


class MpiiValidator:
    """MPII PCKh of the predictions; the val dataset (built at the DataModule's setup) gives the ground truth."""

    def __init__(self, datamodule):
        self.datamodule = datamodule

    def __call__(self, preds: dict, test: dict, results_path: Path) -> dict:
        dataset = self.datamodule.val_dataset
        names = [dataset.records[i]["image_name"] for i in preds["index"]]
        return mpii_validation(preds, dataset.pckh_ground_truth(preds["index"]), names, test["rescore"],
                               test["score_threshold"], results_path=results_path)


def validator_for(datamodule):
    """The validator of the DataModule's dataset kind (``data.kind``: coco or mpii)."""
    if datamodule.dataset_kind == "mpii":
        return MpiiValidator(datamodule)
    if datamodule.dataset_kind == "coco":
        return CocoValidator(datamodule)
    raise ValueError(f"no validator for data.kind={datamodule.dataset_kind!r}: expected coco or mpii")


def module_inputs(datamodule) -> dict:
    """The RSNLitModule arguments that come from the DataModule (besides the codec they share)."""
    augment = datamodule.augment
    return {"keypoints": datamodule.keypoint_spec, "normalization": datamodule.normalization,
            "validator": validator_for(datamodule), "batch_size": int(datamodule.batch_size),
            "box_extension": [float(augment.test_x_ext), float(augment.test_y_ext)]}
