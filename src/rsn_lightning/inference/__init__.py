"""Inference for users: the Predictor API, detections parsing, drawing, ONNX export."""

from rsn_lightning.inference.detections import Detections
from rsn_lightning.inference.predictor import ImageInput, PoseResult, Predictor
from rsn_lightning.visualize import draw_crops_grid, draw_pose, make_grid

__all__ = [
    "Detections", "ImageInput", "PoseResult", "Predictor", "draw_crops_grid", "draw_pose", "make_grid",
]
