"""Test-time post-processing shared by rsn-eval and rsn-predict: instance rescoring (more to come here:
OKS-NMS per image and the COCO results format)."""

from __future__ import annotations

import numpy as np

RESCORE_MODES = ("authors", "mmpose")


def instance_scores(joint_scores, box_scores, mode: str = "authors", threshold: float = 0.2) -> np.ndarray:
    """Per-instance score = box score x mean joint score.

    ``"authors"``: mean of all joints (their test.py). ``"mmpose"``: mean of the joints scoring above
    ``threshold`` (0 when none does), mmpose's COCO rescoring.
    """
    js = np.asarray(joint_scores, dtype=np.float64)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if js.shape[0] == 0:
        return np.zeros(0)
    if mode == "authors":
        mean = js.mean(axis=1)
    elif mode == "mmpose":
        mask = js > threshold
        count = mask.sum(axis=1)
        mean = np.where(count > 0, (js * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    else:
        raise ValueError(f"unknown rescoring {mode!r}; expected one of {RESCORE_MODES}")
    return bs * mean
