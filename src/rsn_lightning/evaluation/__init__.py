"""Post-processing, OKS-NMS, COCO AP, MPII PCKh, per-keypoint and error analysis (pure: numpy and
pycocotools; no torch, no matplotlib, no Lightning)."""

from rsn_lightning.evaluation.coco_eval import STAT_NAMES, CocoKeypointEvaluator, coco_keypoint_stats
from rsn_lightning.evaluation.oks_nms import oks_nms, oks_overlap, soft_oks_nms
from rsn_lightning.evaluation.pckh import head_size_from_box, pckh, pckh_table
from rsn_lightning.evaluation.postprocess import instance_scores

__all__ = [
    "STAT_NAMES", "CocoKeypointEvaluator", "coco_keypoint_stats", "instance_scores", "oks_nms", "oks_overlap",
    "soft_oks_nms", "head_size_from_box", "pckh", "pckh_table",
]
