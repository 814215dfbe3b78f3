"""The top-down dataset base and the cleaning of person records that every format's indexing shares.

A record is one person crop (image path and size, box centre and scale, joints). While indexing, an
image is checked once from its header (``ImageIndex``: missing, truncated or unreadable images are
unusable), boxes of zero or invalid size are rejected and may be clipped to the image, and joints with
NaN or negative coordinates, or beyond the image, are unlabelled individually; the formats count each
reason in a ``SkipReport``. An image that passes the header check but fails to decode later (including a
JPEG whose body libjpeg reports corrupt) is replaced by a grey image with all target weights 0, counted
and logged, so an epoch never stops half way and is never trained on.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from rsn_lightning.data.image_cache import DecodedImages
from rsn_lightning.data.images import SkipReport, probe_image, read_image_checked
from rsn_lightning.keypoints import KeypointSpec

log = logging.getLogger(__name__)


def finite_box(bbox) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) as floats when all four are finite and w, h > 0, else None."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) < 4:
        return None
    try:
        x, y, w, h = (float(v) for v in bbox[:4])
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return x, y, w, h


def clip_box(bbox, width: int, height: int) -> tuple[float, float, float, float] | None:
    """Clip (x, y, w, h) to the image, as HRNet/mmpose sanitise boxes; None if nothing is left."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x + max(0.0, w - 1.0)), min(height - 1.0, y + max(0.0, h - 1.0))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2 - x1, y2 - y1


def clean_joints(raw, num_keypoints: int) -> tuple[np.ndarray | None, int]:
    """Flat COCO keypoints -> ([K, 3] float32, number of joints unlabelled for bad coordinates), or
    (None, 0) when the count is wrong."""
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, 0
    if arr.size != 3 * num_keypoints:
        return None, 0
    joints = arr.reshape(num_keypoints, 3).copy()
    labelled = joints[:, 2] > 0
    with np.errstate(invalid="ignore"):
        bad = labelled & ~(np.isfinite(joints[:, :2]).all(axis=1) & (joints[:, :2] >= 0).all(axis=1))
    bad |= ~np.isfinite(joints[:, 2])
    joints[bad] = 0.0
    return joints.astype(np.float32), int(bad.sum())


def unlabel_outside(joints: np.ndarray, width: int, height: int) -> int:
    """Unlabel (in place) labelled joints beyond the image by more than a pixel; returns how many. A
    joint outside its image cannot be seen, and a huge coordinate (1e30) would blow up a crop."""
    labelled = joints[:, 2] > 0
    outside = labelled & ((joints[:, 0] > width) | (joints[:, 1] > height))
    joints[outside] = 0.0
    return int(outside.sum())


class ImageIndex:
    """Resolves and checks each image once (header read only), remembering why one is unusable."""

    def __init__(self, image_dirs, check_images: bool = True):
        dirs = [image_dirs] if isinstance(image_dirs, (str, os.PathLike)) else list(image_dirs)
        self.dirs = [Path(d) for d in dirs]
        for d in self.dirs:
            if not d.is_dir():
                raise FileNotFoundError(f"image folder not found: {d}")
        self.check = check_images
        self._cache: dict[str, tuple[str, int, int, str]] = {}

    def resolve(self, file_name: str, width=None, height=None) -> tuple[str, int, int, str]:
        """(path, width, height, reason); reason is '' when the image is usable."""
        if file_name in self._cache:
            return self._cache[file_name]
        path = self.dirs[0] / file_name
        if len(self.dirs) > 1:
            for d in self.dirs:
                if (d / file_name).is_file():
                    path = d / file_name
                    break
        if self.check or not (width and height):
            probe = probe_image(path)
            result = (str(path), probe.width, probe.height, probe.reason)
        else:
            result = (str(path), int(width), int(height), "")
        self._cache[file_name] = result
        return result


class TopDownDataset(Dataset):
    """A list of crop records plus the sample transform; decoding failures never raise."""

    kind = "coco"

    def __init__(self, records: list[dict], spec: KeypointSpec, transform, name: str = "dataset",
                 skipped: SkipReport | None = None):
        self.records = records
        for i, r in enumerate(self.records):
            r["index"] = i
        self.spec = spec
        self.transform = transform
        self.name = name
        self.skipped = skipped or SkipReport(name)
        self.load_failures: dict[str, int] = {}
        # every image decoded once into memory, when the training set is small enough (image_cache.py)
        self.decoded: DecodedImages | None = None

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        if self.transform is not None and hasattr(self.transform, "seed"):
            self.transform.seed(seed)

    def load_image(self, record: dict) -> tuple[np.ndarray | None, str]:
        """(uint8 BGR image, '') or (None, why it cannot be used)."""
        held = self.decoded.get(record["image_path"]) if self.decoded is not None else None
        return held if held is not None else read_image_checked(record["image_path"])

    def __getitem__(self, idx) -> dict:
        if isinstance(idx, tuple):
            # (index, seed) from EpochSeededSampler: the augmentation depends on this seed alone, not on
            # which worker drew the sample or what it drew before
            idx, seed = idx
            self.reseed(seed)
        record = self.records[idx]
        image, reason = self.load_image(record)
        failed = image is None
        if failed:
            path = record["image_path"]
            self.load_failures[path] = self.load_failures.get(path, 0) + 1
            if self.load_failures[path] == 1:
                log.warning("%s: cannot use %s (%s); using a grey image with zero target weights "
                            "(%d images failed so far in this process)", self.name, path, reason,
                            len(self.load_failures))
            h, w = max(1, int(record.get("height") or 1)), max(1, int(record.get("width") or 1))
            image = np.full((h, w, 3), 128, np.uint8)
        sample = self.transform(image, record)
        if failed:
            sample["target_weight"] = np.zeros_like(sample["target_weight"])
            if "heatmaps" in sample:
                sample["heatmaps"] = np.zeros_like(sample["heatmaps"])
        return sample
