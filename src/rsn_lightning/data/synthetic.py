"""The synthetic person-keypoint dataset: a COCO-format root generated on the user's machine.

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

Every image is drawn from its own random stream seeded by (seed, split, index), so the bytes of the
whole folder depend on the parameters only, not on the number of worker processes.
Image ids are unique across splits (train 1.., val 100000001..), annotation id = image id * 100 + k.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rsn_lightning.keypoints import COCO_KEYPOINTS

from .synthetic_render import MAX_PERSONS, render_scene

__all__ = ["generate", "is_generated", "render_sample", "DEFAULT_IMAGE_SIZE"]

# bump whenever the drawing or the annotation changes, so that older folders are regenerated
FORMAT_VERSION = 1
MARKER = "rsn_synthetic.json"
DEFAULT_IMAGE_SIZE = (384, 288)
DEFAULT_NUM_TRAIN = 4500
DEFAULT_NUM_VAL = 500
MIN_SIDE, MAX_SIDE = 96, 2048
SPLITS = ("train", "val")
_SPLIT_CODE = {"train": 1, "val": 2}
_ID_BASE = {"train": 0, "val": 100_000_000}
MAX_IMAGES_PER_SPLIT = 99_999_999
# below this many images, starting worker processes costs more than it saves
_POOL_MIN_IMAGES = 64


def image_id(split: str, index: int) -> int:
    return _ID_BASE[split] + index + 1


def _image_rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    # stream 1 (detections) is separate, so the detector noise never shifts what is drawn
    return np.random.default_rng([seed, _SPLIT_CODE[split], index, stream])


def render_sample(seed: int, split: str, index: int, image_size=DEFAULT_IMAGE_SIZE, max_persons: int = 4):
    """Re-render image `index` of `split` exactly as `generate` draws it (image, label map, persons)."""
    return render_scene(_image_rng(seed, split, index), tuple(image_size), max_persons)


# ----------------------------------------------------------------------------------------------
# one image (runs in the worker processes)


def _annotation(person, img_id: int, k: int) -> dict:
    kps = []
    for (x, y), v in zip(person.joints, person.visibility):
        # COCO writes unlabelled joints as 0,0,0
        kps += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
    return {
        "id": img_id * 100 + k + 1,
        "image_id": img_id,
        "category_id": 1,
        "iscrowd": 0,
        "area": float(person.area),
        "bbox": [round(float(b), 2) for b in person.bbox],
        "num_keypoints": person.num_keypoints,
        "keypoints": kps,
    }


def _detections(rng: np.random.Generator, persons, img_id: int, W: int, H: int) -> list[dict]:
    """Detector-like boxes: jittered true boxes (a few missed), plus low-score false positives."""
    dets = []
    for p in persons:
        x, y, w, h = p.bbox
        seen = p.area / max(p.full_area, 1)  # fraction of the person not hidden or cut off
        small = p.area < 32 * 32
        p_miss = 0.025 + 0.25 * small + 0.2 * (seen < 0.4) + 0.1 * (p.num_keypoints < 8)
        if rng.random() < p_miss:
            continue
        cx = x + w / 2 + rng.normal(0, 0.03) * w
        cy = y + h / 2 + rng.normal(0, 0.03) * h
        w2, h2 = w * np.exp(rng.normal(0, 0.04)), h * np.exp(rng.normal(0, 0.04))
        score = 0.97 - 0.25 * (1 - seen) * rng.random() - 0.1 * small - abs(rng.normal(0, 0.03))
        dets.append(_det(img_id, (cx - w2 / 2, cy - h2 / 2, w2, h2), float(np.clip(score, 0.3, 1.0)), W, H))
    for _ in range(int(rng.poisson(0.3))):
        if persons and rng.random() < 0.5:  # a part of a person taken for a whole one
            x, y, w, h = persons[int(rng.integers(len(persons)))].bbox
            fw, fh = rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6)
            box = (x + rng.uniform(0, 1 - fw) * w, y + rng.uniform(0, 1 - fh) * h, fw * w, fh * h)
        else:  # background clutter
            bh = rng.uniform(0.15, 0.6) * H
            bw = bh / rng.uniform(1.2, 3.0)
            box = (rng.uniform(0, W - bw), rng.uniform(0, H - bh), bw, bh)
        dets.append(_det(img_id, box, float(rng.uniform(0.05, 0.45)), W, H))
    return [d for d in dets if d["bbox"][2] >= 1 and d["bbox"][3] >= 1]


def _det(img_id, box, score, W, H) -> dict:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(W), box[0] + box[2]), min(float(H), box[1] + box[3])
    bbox = [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]
    return {"image_id": img_id, "category_id": 1, "bbox": bbox, "score": round(score, 4)}


def _make_image(task) -> tuple[dict, list[dict], list[dict]]:
    root, split, index, seed, (W, H), quality, max_persons = task
    sample = render_scene(_image_rng(seed, split, index), (W, H), max_persons)
    img_id = image_id(split, index)
    file_name = f"{img_id:012d}.jpg"
    ok, buf = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError(f"JPEG encoding failed for {file_name}")
    Path(root, "images", split, file_name).write_bytes(buf.tobytes())
    image = {"id": img_id, "file_name": file_name, "width": W, "height": H}
    anns = [_annotation(p, img_id, k) for k, p in enumerate(sample.persons)]
    dets = []
    if split == "val":
        dets = _detections(_image_rng(seed, split, index, 1), sample.persons, img_id, W, H)
    return image, anns, dets


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
        _run_workers(tasks, min(workers, total), results, progress)
    else:
        _collect(((t, _make_image(t)) for t in tasks), results, progress, total)

    category = COCO_KEYPOINTS.coco_category()
    counts = {"num_train": params["num_train"], "num_val": params["num_val"]}
    for split in SPLITS:
        images, anns, dets = results[split]
        coco = {
            "info": {"description": f"rsn_lightning synthetic person keypoints ({split})", "version": "1.0",
                     "year": 2024, "contributor": "rsn_lightning.data.synthetic", "url": "",
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


def _collect(pairs, results, progress, total) -> None:
    """Gather (task, result) pairs, arriving in any order, into per-split lists in task order."""
    pending = {}
    for done, (task, result) in enumerate(pairs, 1):
        pending[(task[1], task[2])] = result
        if progress is not None:
            progress(done, total)
    for split, index in sorted(pending, key=lambda key: (_SPLIT_CODE[key[0]], key[1])):
        image, anns, dets = pending[(split, index)]
        images_, anns_, dets_ = results[split]
        images_.append(image)
        anns_.extend(anns)
        dets_.extend(dets)


def _run_workers(tasks, workers: int, results, progress) -> None:
    """Draw the images in `workers` fresh Python processes, each taking every workers-th task.

    Plain subprocesses rather than multiprocessing: a forked child can deadlock on OpenCV's or torch's
    thread pools inherited from the parent, and spawn re-imports the caller's __main__ (which breaks
    for unguarded scripts and stdin), and a multiprocessing pool hangs when a worker dies.
    Each worker reports one JSON line per image; JSON round-trips Python floats exactly, so the
    files are byte-identical to a single-process run.
    """
    env = dict(os.environ)
    # the workers must import this very package, also from a source checkout that is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    # rsn_lightning.data's __init__ imports torch (1-2 s per process); the workers need only this
    # module, so they get an empty stand-in for the package pointing at the same folder
    code = (
        "import sys, types; import rsn_lightning; "
        "pkg = types.ModuleType('rsn_lightning.data'); "
        f"pkg.__path__ = [{str(Path(__file__).resolve().parent)!r}]; "
        "sys.modules['rsn_lightning.data'] = pkg; "
        "from rsn_lightning.data.synthetic import _worker_main; _worker_main()"
    )
    procs = []
    lines: queue.Queue = queue.Queue()

    def pump(proc):
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    try:
        for w in range(workers):
            # stderr to a file: a chatty worker must never block on a full pipe
            err = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, env=env, text=True)
            proc.stdin.write(json.dumps(tasks[w::workers]))
            proc.stdin.close()
            procs.append((proc, err))
            threading.Thread(target=pump, args=(proc,), daemon=True).start()

        def pairs():
            finished = 0
            while finished < workers:
                line = lines.get()
                if line is None:
                    finished += 1
                    continue
                task, image, anns, dets = json.loads(line)
                yield task, (image, anns, dets)

        _collect(pairs(), results, progress, len(tasks))
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                raise RuntimeError(f"synthetic data worker failed (exit {proc.returncode}):\n{err.read()[-3000:]}")
        got = sum(len(images) for images, _, _ in results.values())
        if got != len(tasks):  # pragma: no cover - a worker exiting 0 early
            raise RuntimeError(f"synthetic data workers returned {got} of {len(tasks)} images")
    finally:
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()


def _worker_main() -> None:
    """Entry of a worker process: tasks as JSON on stdin, one JSON result line per image on stdout."""
    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own threads would only contend
    for task in json.loads(sys.stdin.read()):
        image, anns, dets = _make_image(task)
        sys.stdout.write(json.dumps([task, image, anns, dets], separators=(",", ":")) + "\n")
        sys.stdout.flush()
