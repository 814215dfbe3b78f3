"""Writing of the synthetic person-keypoint dataset: a COCO-format root generated on the user's machine.

Lets the library be tried (training, evaluation with detected boxes, AP) before fetching COCO.
Layout of a generated root::

    root/
      images/train/000000000001.jpg ...        file_name in the JSON is relative to images/<split>/
      images/val/000100000001.jpg ...
      annotations/person_keypoints_train.json  COCO keypoint annotations (17 COCO joints)
      annotations/person_keypoints_val.json
      annotations/person_detections_val.json   detector output for val, like the authors'
                                               COCO_val2017_detections_AP_H_56_person.json
      rsn_synthetic.json                       marker: parameters and counts, written last

The bytes of the whole folder depend on the parameters only, not on the number of worker processes
(each image has its own random stream, see ``sample.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS
from rsn_lightning.synthetic.people import MAX_PERSONS
from rsn_lightning.synthetic.pool import collect, run_workers
from rsn_lightning.synthetic.sample import DEFAULT_IMAGE_SIZE, SPLITS, make_image

# bump whenever the drawing or the annotation changes, so that older folders are regenerated
FORMAT_VERSION = 1
MARKER = "rsn_synthetic.json"
DEFAULT_NUM_TRAIN = 4500
DEFAULT_NUM_VAL = 500
MIN_SIDE, MAX_SIDE = 96, 2048
MAX_IMAGES_PER_SPLIT = 99_999_999
# below this many images, starting worker processes costs more than it saves
_POOL_MIN_IMAGES = 64


# ----------------------------------------------------------------------------------------------
# argument checks, the marker


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 1 <= value <= MAX_IMAGES_PER_SPLIT:
        raise ValueError(f"{name} must be between 1 and {MAX_IMAGES_PER_SPLIT}, got {value}")
    return int(value)


def _check_args(num_train, num_val, seed, image_size, workers, jpeg_quality, max_persons) -> dict:
    params = {"num_train": _check_count("num_train", num_train), "num_val": _check_count("num_val", num_val)}
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        W, H = image_size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (W, H))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (MIN_SIDE <= W <= MAX_SIDE and MIN_SIDE <= H <= MAX_SIDE):
        raise ValueError(
            f"image_size must be (width, height) with integers in {MIN_SIDE}..{MAX_SIDE}, got {image_size!r}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be None or a positive integer, got {workers!r}")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")
    if (isinstance(max_persons, bool) or not isinstance(max_persons, int)
            or not 1 <= max_persons <= MAX_PERSONS):
        raise ValueError(f"max_persons must be an integer in 1..{MAX_PERSONS}, got {max_persons!r}")
    params.update(seed=int(seed), image_size=[int(W), int(H)], jpeg_quality=jpeg_quality,
                  max_persons=max_persons, format_version=FORMAT_VERSION)
    return params


def _prepare_root(root: Path) -> None:
    """Create the root and prove it is writable, before any image is drawn."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".rsn_synthetic_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OSError(f"synthetic dataset root {str(root)!r} is not a writable folder: {e}") from e


def _paths(root: Path) -> dict:
    ann = root / "annotations"
    return {
        "root": root,
        "train_images": root / "images" / "train",
        "val_images": root / "images" / "val",
        "train_annotations": ann / "person_keypoints_train.json",
        "val_annotations": ann / "person_keypoints_val.json",
        "val_detections": ann / "person_detections_val.json",
        "marker": root / MARKER,
    }


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_generated(root, **params) -> bool:
    """Whether `root` holds a completely generated dataset (and, if given, with these parameters).

    `params` are any of generate's num_train, num_val, seed, image_size, jpeg_quality, max_persons.
    """
    marker = _read_marker(Path(root))
    if marker is None or marker.get("params", {}).get("format_version") != FORMAT_VERSION:
        return False
    paths = _paths(Path(root))
    if not all(paths[k].is_file() for k in ("train_annotations", "val_annotations", "val_detections")):
        return False
    recorded = marker["params"]
    for key, value in params.items():
        if key not in recorded:
            raise TypeError(f"is_generated() got an unknown parameter {key!r}")
        if (list(value) if key == "image_size" else value) != recorded[key]:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# generation


def _dump_json(obj, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


def generate(
    root,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    seed: int = 0,
    image_size=DEFAULT_IMAGE_SIZE,
    workers: int | None = None,
    *,
    jpeg_quality: int = 90,
    max_persons: int = 4,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate the synthetic COCO-format keypoint dataset under `root` (see the module docstring).

    A root already generated with the same parameters is reused as it is; one generated with other
    parameters raises ValueError; a half-written one (no marker) is redone; `overwrite=True` always
    regenerates.
    `image_size` is (width, height). `progress(done, total)` is called as images are finished.
    Returns the paths (root, {train,val}_images, {train,val}_annotations, val_detections, marker)
    and counts (num_train, num_val, num_train_persons, num_val_persons, num_detections) plus
    `reused` (True when nothing had to be drawn).
    """
    params = _check_args(num_train, num_val, seed, image_size, workers, jpeg_quality, max_persons)
    root = Path(root).expanduser()
    paths = _paths(root)
    marker = _read_marker(root)
    if marker is not None and is_generated(root) and not overwrite:
        if marker["params"] == params:
            return {**paths, **marker["counts"], "reused": True}
        old = marker["params"]
        diff = {k: (old.get(k), v) for k, v in params.items() if old.get(k) != v}
        raise ValueError(
            f"{root} already holds a synthetic dataset generated with other parameters "
            f"(recorded vs requested: {diff}); pass overwrite=True (rsn-synth --overwrite) "
            "or use another root"
        )
    _prepare_root(root)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)

    # the marker goes first so a crash leaves a folder that is_generated() rejects
    paths["marker"].unlink(missing_ok=True)
    for split in SPLITS:
        folder = paths[f"{split}_images"]
        folder.mkdir(parents=True, exist_ok=True)
        # stale images of an earlier, larger run; only files named like ours, never a user's own
        for f in folder.glob("*.jpg"):
            if len(f.stem) == 12 and f.stem.isdigit():
                f.unlink()
    paths["train_annotations"].parent.mkdir(parents=True, exist_ok=True)

    W, H = params["image_size"]
    tasks = [(str(root), split, i, params["seed"], (W, H), jpeg_quality, max_persons)
             for split in SPLITS for i in range(params[f"num_{split}"])]
    results = {split: ([], [], []) for split in SPLITS}
    total = len(tasks)
    if workers > 1 and total >= _POOL_MIN_IMAGES:
        run_workers(tasks, min(workers, total), results, progress)
    else:
        collect(((t, make_image(t)) for t in tasks), results, progress, total)

    category = COCO_KEYPOINTS.coco_category()
    counts = {"num_train": params["num_train"], "num_val": params["num_val"]}
    for split in SPLITS:
        images, anns, dets = results[split]
        coco = {
            "info": {"description": f"rsn_lightning synthetic person keypoints ({split})", "version": "1.0",
                     "year": 2024, "contributor": "rsn_lightning.synthetic", "url": "",
                     "date_created": "", "generator": params},
            "licenses": [],
            "images": images,
            "annotations": anns,
            "categories": [category],
        }
        _dump_json(coco, paths[f"{split}_annotations"])
        counts[f"num_{split}_persons"] = len(anns)
        if split == "val":
            _dump_json(dets, paths["val_detections"])
            counts["num_detections"] = len(dets)
    layout = {k: str(v.relative_to(root)) for k, v in paths.items() if k not in ("root", "marker")}
    _dump_json({"params": params, "counts": counts, "layout": layout}, paths["marker"])
    return {**paths, **counts, "reused": False}
