"""Decoded images kept in memory for training sets small enough to hold, so that each image is decoded
once per run instead of once per person per epoch.

Decoding is the largest single cost of a training sample on a CPU (0.45-0.71 ms for a 384x288 JPEG of
the synthetic set, of the quickstart's ~1 ms of data work per crop), and with several people per image
and many epochs the same image is decoded dozens of times. Measured (docs/performance.md, "Fifth
sitting"): the float32 quickstart took 7 min 45 s with the cache and 8 min 01 s without, with the same
loss at every logged step, for 1.06 GB more peak memory (the 3,296 decoded images). Large sets (COCO,
MPII) do not fit the budget and keep decoding from disk, in parallel in the loader's workers. Each DDP rank
is its own process with its own copy, so ``PoseDataModule`` hands each rank its share of the node's budget.

The images are decoded in the main process before the loader's workers start: forked workers share the
pages and never copy them (the arrays are read-only, so nothing writes to them). Where workers would be
spawned instead of forked (macOS, Windows), each would receive a pickled copy, so nothing is cached then.
An image that fails to decode is remembered with its reason and handled exactly as an uncached one
(``TopDownDataset.__getitem__``): the cache changes when pixels are decoded, never which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np

from rsn_lightning.data.images import read_image_checked

log = logging.getLogger(__name__)

GIB = 1024**3


class DecodedImages:
    """Path -> (read-only uint8 BGR image or None, reason it cannot be used), decoded up front."""

    def __init__(self):
        self._images: dict[str, tuple[np.ndarray | None, str]] = {}
        self.nbytes = 0

    def add(self, path: str) -> None:
        if path in self._images:
            return
        image, reason = read_image_checked(path)
        if image is not None:
            image.flags.writeable = False
            self.nbytes += image.nbytes
        self._images[path] = (image, reason)

    def __len__(self) -> int:
        return len(self._images)

    def get(self, path: str) -> tuple[np.ndarray | None, str] | None:
        """(image, reason) as ``read_image_checked`` returns them, or None for a path not held."""
        return self._images.get(path)


def decoded_size(records: Iterable[dict]) -> tuple[int, int]:
    """(number of distinct images, bytes their decoded uint8 BGR pixels take) from the records' sizes."""
    sizes = {}
    for r in records:
        sizes[r["image_path"]] = int(r.get("width") or 0) * int(r.get("height") or 0) * 3
    return len(sizes), sum(sizes.values())


def cache_images(dataset, max_gib: float, name: str, budget: str | None = None) -> DecodedImages | None:
    """Decode every image of ``dataset`` (a ``TopDownDataset``) into memory and attach them when they take
    at most ``max_gib`` GiB; otherwise leave it decoding from disk. Logs either decision, naming the
    budget as ``budget`` says where it came from (default: ``data.image_cache_gib=<max_gib>``)."""
    budget = budget or f"data.image_cache_gib={max_gib:g}"
    count, size = decoded_size(dataset.records)
    if max_gib <= 0 or count == 0:
        return None
    if size > max_gib * GIB:
        log.info("%s: decoding images from disk: its %d images would take %.1f GiB decoded, more than "
                 "%s", name, count, size / GIB, budget)
        return None
    start = time.perf_counter()
    decoded = DecodedImages()
    for r in dataset.records:
        decoded.add(r["image_path"])
        # the sizes come from the annotation file when data.check_images is off, and may be wrong
        if decoded.nbytes > max_gib * GIB:
            log.info("%s: decoding images from disk: its images take more than %s decoded (more than the "
                     "annotation file's sizes say)", name, budget)
            return None
    dataset.decoded = decoded
    log.info("%s: decoded its %d images into memory once (%.2f GiB, %.1f s; %s)",
             name, len(decoded), decoded.nbytes / GIB, time.perf_counter() - start, budget)
    return decoded
