"""Inference for users: the Predictor API, drawing, ONNX export."""

from rsn_lightning.inference.predictor import Detections, PoseResult, PredictionRun, Predictor
from rsn_lightning.inference.visualize import draw_crops_grid, draw_pose, make_grid

__all__ = [
    "Detections", "PoseResult", "PredictionRun", "Predictor", "draw_crops_grid", "draw_pose", "make_grid",
]
