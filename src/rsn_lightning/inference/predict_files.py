"""Pose prediction on image files, folders and videos (what rsn-predict runs): :func:`run_predictions`.

``run_predictions`` walks the inputs, looks up each image's person boxes (``inference.detections``), runs
the Predictor and writes ``results.json`` (COCO results plus ``bbox`` and ``file_name``), pictures and
videos. Messy inputs never abort a run nor reach the results as numbers: unreadable or corrupt image files
and videos that do not open are skipped, and detection boxes of zero size or with NaN/Inf values are
skipped; both are listed in ``skipped.json`` beside the results and counted in the summary. The results
JSON is strict (no NaN tokens).

Image ids (``image_id`` of each result; ``file_name`` is in every result too): with ``image_ids`` (a
COCO file) a file takes the id it lists. Otherwise an image named by a number (COCO's
``000000000785.jpg``) takes that number; every other image, and a number already taken, takes the next
free id above the largest such number (0 when there is none), in input order. Video frames come after
all images, each frame one new id (results also carry ``"file_name": "<video>#<frame index>"`` and
``"frame"``); detections for a frame are looked up by its frame index or by that key. Ids are unique
within a run.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rsn_lightning.data.images import read_image_checked
from rsn_lightning.inference.detections import Detections
from rsn_lightning.inference.predictor import ImageInput
from rsn_lightning.visualize import draw_pose

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class PredictionRun:
    """What ``run_predictions`` wrote."""

    results_path: Path
    pictures: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    num_images: int = 0
    num_people: int = 0
    images_without_boxes: list[str] = field(default_factory=list)
    # {"file_name", "reason"} of each input file or detection box left out (also in skipped.json)
    skipped: list[dict] = field(default_factory=list)
    skipped_path: Path | None = None


class VideoUnreadable(OSError):
    """A video file OpenCV cannot open (skipped by ``run_predictions``)."""


class ImageIds:
    """Unique image ids for a run, as the module docstring describes."""

    def __init__(self, names: list[str], given: dict[str, int] | None = None):
        self.given = given or {}
        self.taken: set[int] = set(self.given.values())
        numbered = [int(Path(n).stem) for n in names if Path(n).stem.isdigit()]
        self.next_free = max(numbered + list(self.taken), default=-1) + 1

    def for_image(self, name: str) -> int:
        if name in self.given:
            return self.given[name]
        stem = Path(name).stem
        if stem.isdigit() and int(stem) not in self.taken:
            self.taken.add(int(stem))
            return int(stem)
        return self.new()

    def new(self) -> int:
        while self.next_free in self.taken:
            self.next_free += 1
        self.taken.add(self.next_free)
        return self.next_free


def list_inputs(inputs) -> list[Path]:
    """Files to process: the given image/video files, and the images and videos of given folders (sorted)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                warnings.warn(f"no images or videos in folder {p}", stacklevel=2)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def load_image_ids(path) -> dict[str, int]:
    """File name -> image id from a COCO file's ``images`` list."""
    with open(path) as f:
        data = json.load(f)
    images = data.get("images") if isinstance(data, dict) else data
    if not isinstance(images, list):
        raise ValueError(f"{path}: expected a COCO file with an 'images' list")
    return {Path(im["file_name"]).name: int(im["id"]) for im in images}


def _unique(path: Path, used: set[str]) -> Path:
    candidate, n = path, 1
    while str(candidate) in used:
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        n += 1
    used.add(str(candidate))
    return candidate


def draw_result(image_bgr: np.ndarray, result, spec, score_thr: float = 0.3) -> np.ndarray:
    return draw_pose(image_bgr, result.keypoints, result.scores, spec, score_thr=score_thr)


def _boxes_for(image, detections, image_id, file_name, missing: list):
    if detections is None:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, w, h]]), np.ones(1)
    found = detections.lookup(image_id=image_id, file_name=file_name)
    if found is None or len(found[0]) == 0:
        missing.append(file_name)
        log.warning("no person boxes for %s (image id %s) in %s: nothing predicted there",
                    file_name, image_id, detections.source)
        return np.zeros((0, 4)), np.zeros(0)
    return found


def run_predictions(predictor, inputs, output_dir, detections=None, image_ids=None, draw: bool = True,
                    score_thr: float = 0.3, results_name: str = "results.json", category_id: int = 1,
                    det_score_thr: float = 0.0) -> PredictionRun:
    """Predict every image and video of ``inputs`` (files and/or folders) with ``predictor`` and write
    ``output_dir/results.json``, pictures ``output_dir/pictures/<name>.png`` and videos
    ``output_dir/videos/<name>.mp4``.

    ``detections``: a detections file path, a ``Detections`` or None (whole image). ``image_ids``:
    a COCO annotation/image-info file mapping file names to ids (default: the file name's number,
    as COCO names are, else the running index)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if detections is not None and not isinstance(detections, Detections):
        detections = Detections.load(detections, category_id=category_id, score_thr=det_score_thr)
    files = list_inputs(inputs)
    run = PredictionRun(results_path=out / results_name)
    if detections is not None:
        run.skipped += [{"file_name": detections.source, "reason": f"box of zero size or NaN/Inf: {b}"}
                        for b in detections.invalid]
    results: list[dict] = []
    images = [f for f in files if f.suffix.lower() not in VIDEO_EXTS]
    videos = [f for f in files if f.suffix.lower() in VIDEO_EXTS]
    ids = ImageIds([f.name for f in images], load_image_ids(image_ids) if image_ids else {})
    used_names: set[str] = set()
    read: list[Path] = []

    def image_items() -> Iterator[ImageInput]:
        for f in images:
            img, reason = read_image_checked(f)
            if img is None:
                log.warning("skipping %s: %s", f, reason)
                run.skipped.append({"file_name": str(f), "reason": reason})
                continue
            image_id = ids.for_image(f.name)
            boxes, scores = _boxes_for(img, detections, image_id, f.name, run.images_without_boxes)
            read.append(f)
            yield ImageInput(img, boxes, scores, image_id, f.name)

    for res in predictor.predict_stream(image_items()):
        item_file = read.pop(0)
        results.extend(res.to_coco(category_id))
        run.num_images += 1
        run.num_people += len(res)
        if draw:
            # re-read rather than keep every decoded image alive while batches fill
            img, _ = read_image_checked(item_file)
            path = _unique(out / "pictures" / f"{item_file.stem}.png", used_names)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), draw_result(img, res, predictor.spec, score_thr)):
                raise OSError(f"could not write {path}")
            run.pictures.append(path)
    for v in videos:
        try:
            vid_results, video_path, n_frames, n_people = predict_video(
                predictor, v, out / "videos", detections=detections, draw=draw, score_thr=score_thr,
                missing=run.images_without_boxes, ids=ids, category_id=category_id)
        except VideoUnreadable as err:
            log.warning("skipping %s", err)
            run.skipped.append({"file_name": str(v), "reason": str(err)})
            continue
        results.extend(vid_results)
        run.num_images += n_frames
        run.num_people += n_people
        if video_path is not None:
            run.videos.append(video_path)
    with open(run.results_path, "w") as f:
        json.dump(results, f, allow_nan=False)
    if run.skipped:
        run.skipped_path = out / "skipped.json"
        with open(run.skipped_path, "w") as f:
            json.dump(run.skipped, f, indent=1)
    return run


def predict_video(predictor, path, output_dir, detections=None, draw: bool = True, score_thr: float = 0.3,
                  missing: list | None = None, ids: ImageIds | None = None, category_id: int = 1):
    """Predict every frame of a video (image ids: new ids from ``ids``, else the frame index); write
    an MP4 with the poses drawn. Returns (COCO results, video path or None, frames, people)."""
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoUnreadable(f"cannot open video {path}: the file is missing, not a video, or in a codec "
                              "this OpenCV build cannot decode")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    missing = [] if missing is None else missing
    writer, out_path = None, None
    results: list[dict] = []
    frames: list[np.ndarray] = []
    n_frames = n_people = 0

    def items() -> Iterator[ImageInput]:
        idx = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
            name = f"{path.name}#{idx}"
            boxes, scores = _boxes_for(frame, detections, idx, name, missing)
            yield ImageInput(frame, boxes, scores, ids.new() if ids is not None else idx, name, frame=idx)
            idx += 1

    try:
        for res in predictor.predict_stream(items()):
            frame = frames.pop(0)
            results.extend(res.to_coco(category_id))
            n_frames += 1
            n_people += len(res)
            if draw:
                if writer is None:
                    out_path = Path(output_dir) / f"{path.stem}.mp4"
                    out_path.parent.mkdir(parents=True, exist_ok=True)
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise OSError(f"cannot write {out_path}: this OpenCV build has no MP4 writer")
                writer.write(draw_result(frame, res, predictor.spec, score_thr))
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n_frames == 0:
        warnings.warn(f"video {path} opened but yielded no frames", stacklevel=2)
    return results, out_path, n_frames, n_people
