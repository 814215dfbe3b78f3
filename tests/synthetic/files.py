"""Helpers of the synthetic package's tests: the fixture set's parameters and readers of a written root."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

SEED = 3
SIZE = (384, 288)


def load_coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def keypoints_of(ann) -> np.ndarray:
    return np.asarray(ann["keypoints"], float).reshape(-1, 3)


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
