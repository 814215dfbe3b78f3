"""Top-down pose prediction for users: images, folders and videos in; COCO results JSON and pictures out.

The test-time pipeline is the evaluation's: each person box is extended (x 1.09, y 1.135, the authors'
test setting), fitted to the input's aspect ratio, cropped with ``cv2.warpAffine``, normalised as the
checkpoint says, run through the network (flip test on by default), decoded with the authors' method
and mapped back to the image.

Messy inputs never abort a run nor reach the results as numbers: unreadable or corrupt image files and
videos that do not open are skipped, and detection boxes of zero size or with NaN/Inf values are
skipped; both are listed in ``skipped.json`` beside the results and counted in the summary. The results
JSON is strict (no NaN tokens), and a network whose weights or outputs are not finite is refused.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from rsn_lightning.codec import decode_heatmaps
from rsn_lightning.config_checks import BadInputError
from rsn_lightning.data.images import read_image_checked
from rsn_lightning.evaluation.flip import flip_test
from rsn_lightning.evaluation.oks_nms import oks_nms, soft_oks_nms
from rsn_lightning.evaluation.postprocess import instance_scores
from rsn_lightning.geometry import box_to_center_scale, crop_affine
from rsn_lightning.keypoints import KeypointSpec, get_keypoint_spec
from rsn_lightning.normalization import InputNormalization

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DEFAULT_INPUT_SIZE = {"coco": (192, 256), "mpii": (256, 256)}
DEFAULT_BLUR = {"coco": 5, "mpii": 9}


# ---------------------------------------------------------------------------------------------- boxes
class Detections:
    """Person boxes per image, from a COCO-style detections file (a list of {image_id or file_name,
    bbox [x, y, w, h], score, category_id}) or a user mapping {file name: [[x, y, w, h(, score)], ...]}
    (boxes may also be {"bbox": [...], "score": s}). Video frames are looked up by frame index (as
    image_id) or by the key ``"<video file name>#<frame index>"``."""

    def __init__(self, by_id: dict[int, list], by_name: dict[str, list], source: str = "detections",
                 invalid: list[str] | None = None):
        self.by_id = by_id
        self.by_name = by_name
        self.source = source
        self.invalid = invalid or []  # "where: box" of boxes left out (zero size, NaN/Inf)

    @classmethod
    def load(cls, path, category_id: int | None = 1, score_thr: float = 0.0) -> Detections:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"detections file not found: {path}")
        with open(path) as f:
            data = json.load(f)
        return cls.from_data(data, category_id, score_thr, source=str(path))

    @classmethod
    def from_data(cls, data, category_id: int | None = 1, score_thr: float = 0.0,
                  source: str = "detections") -> Detections:
        by_id: dict[int, list] = {}
        by_name: dict[str, list] = {}
        invalid: list[str] = []

        def usable(box, where: str) -> bool:
            if box_is_valid(box[:4]) and np.isfinite(box[4]):
                return box[4] >= score_thr
            invalid.append(f"{where}: {box}")
            return False

        if isinstance(data, dict) and "annotations" in data and "images" in data:
            raise ValueError(f"{source} looks like a COCO ground-truth file; pass a detections list "
                             "or a {file name: boxes} mapping")
        if isinstance(data, list):
            for i, det in enumerate(data):
                if not isinstance(det, dict) or "bbox" not in det:
                    raise ValueError(f"{source}: entry #{i} is not a detection with a 'bbox'")
                if category_id is not None and det.get("category_id", category_id) != category_id:
                    continue
                box = _parse_box(det, f"{source} entry #{i}")
                if not usable(box, f"{source} entry #{i}"):
                    continue
                if "image_id" in det:
                    by_id.setdefault(int(det["image_id"]), []).append(box)
                elif "file_name" in det:
                    by_name.setdefault(str(det["file_name"]), []).append(box)
                else:
                    raise ValueError(f"{source}: entry #{i} has neither 'image_id' nor 'file_name'")
        elif isinstance(data, dict):
            for name, boxes in data.items():
                parsed = [(_parse_box(b, f"{source} [{name!r}] box #{j}"), f"{source} [{name!r}] box #{j}")
                          for j, b in enumerate(boxes)]
                by_name[str(name)] = [b for b, where in parsed if usable(b, where)]
        else:
            raise ValueError(f"{source}: expected a JSON list of detections or an object file name -> boxes")
        if invalid:
            log.warning("%s: skipped %d boxes of zero size or with NaN/Inf values (e.g. %s)", source,
                        len(invalid), invalid[0])
        return cls(by_id, by_name, source, invalid)

    def lookup(self, image_id: int | None = None, file_name: str | None = None):
        """(boxes [P, 4] xywh, scores [P]) for an image, or None when the file knows nothing of it."""
        boxes = None
        if file_name is not None:
            boxes = self.by_name.get(file_name)
            if boxes is None:
                boxes = self.by_name.get(Path(file_name).name)
        if boxes is None and image_id is not None:
            boxes = self.by_id.get(int(image_id))
        if boxes is None:
            return None
        arr = np.asarray(boxes, np.float64).reshape(-1, 5)
        return arr[:, :4], arr[:, 4]


def _parse_box(b, where: str) -> list[float]:
    if isinstance(b, dict):
        bbox, score = b.get("bbox"), b.get("score", 1.0)
    else:
        bbox, score = list(b)[:4], (list(b)[4] if len(b) > 4 else 1.0)
    if bbox is None or len(bbox) < 4:
        raise ValueError(f"{where}: a box needs [x, y, w, h], got {b!r}")
    try:
        return [float(v) for v in bbox[:4]] + [float(score)]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: box {bbox!r} / score {score!r} are not numbers") from err


def box_is_valid(box) -> bool:
    """A finite (x, y, w, h) box with w > 0 and h > 0: one a crop can be cut from."""
    b = np.asarray(box, np.float64).reshape(-1)
    return bool(b.size >= 4 and np.isfinite(b[:4]).all() and b[2] > 0 and b[3] > 0)


# ---------------------------------------------------------------------------------------------- results
@dataclass
class PoseResult:
    """One image's people: keypoints [P, K, 2] image px, joint scores [P, K], boxes [P, 4] xywh,
    box scores [P] and instance scores [P]."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    instance_scores: np.ndarray
    image_id: int = 0
    file_name: str = ""
    frame: int | None = None

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def to_coco(self, category_id: int = 1) -> list[dict]:
        out = []
        for i in range(len(self)):
            kp = np.concatenate([self.keypoints[i], self.scores[i][:, None]], axis=1).reshape(-1)
            out.append({"image_id": int(self.image_id), "category_id": category_id,
                        "keypoints": [round(float(v), 4) for v in kp],
                        "score": float(self.instance_scores[i]),
                        "bbox": [round(float(v), 2) for v in self.boxes[i]], "file_name": self.file_name})
            if self.frame is not None:
                out[-1]["frame"] = self.frame
        return out


@dataclass
class PredictionRun:
    """What ``Predictor.run`` wrote."""

    results_path: Path
    pictures: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    num_images: int = 0
    num_people: int = 0
    images_without_boxes: list[str] = field(default_factory=list)
    # {"file_name", "reason"} of each input file or detection box left out (also in skipped.json)
    skipped: list[dict] = field(default_factory=list)
    skipped_path: Path | None = None


@dataclass
class _Item:
    image: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    image_id: int
    file_name: str
    frame: int | None = None


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


def _resolve_device(device) -> torch.device:
    if device in (None, "auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def list_inputs(inputs) -> list[Path]:
    """Files to process: the given image/video files, and the images and videos of given folders (sorted)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            exts = IMAGE_EXTS | VIDEO_EXTS
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in exts)
            if not found:
                warnings.warn(f"no images or videos in folder {p}", stacklevel=2)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


# ---------------------------------------------------------------------------------------------- predictor
class Predictor:
    """Pose prediction from a checkpoint path (``rsn_lightning.load_model``) or a network.

    The network's ``.normalization`` (InputNormalization; the authors' BGR when absent) and
    ``.keypoints`` (keypoint set name; COCO when absent) are applied. ``input_size`` (W, H) defaults
    to the network's ``input_size`` attribute, else 192x256 (COCO) / 256x256 (MPII). ``flip``,
    ``flip_shift``, ``decode``, ``blur_kernel`` and ``shift`` left as None take what the network's
    ``test_settings`` recorded (the checkpoint's validation), else the authors' (flip test on, no shift,
    their decoding, blur 5 for COCO / 9 for MPII, quarter shift).
    """

    def __init__(self, model, device=None, batch_size: int = 32, flip: bool | None = None,
                 flip_shift: bool | None = None, input_size=None, keypoint_spec: KeypointSpec | None = None,
                 normalization: InputNormalization | None = None, decode: str | None = None,
                 blur_kernel: int | None = None, shift: float | None = None, x_ext: float = 0.09,
                 y_ext: float = 0.135,
                 rescore: str = "authors", score_threshold: float = 0.2, oks_nms=None, nms_threshold=None,
                 det_score_thr: float = 0.0, category_id: int = 1):
        if isinstance(model, (str, Path)):
            from rsn_lightning import load_model

            model = load_model(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a checkpoint path or an nn.Module, got {type(model).__name__}")
        broken = [name for name, t in list(model.named_parameters()) + list(model.named_buffers())
                  if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if broken:
            raise BadInputError(f"the network has NaN/Inf values in {len(broken)} weight tensors (e.g. "
                             f"{broken[:3]}): a diverged or damaged checkpoint, whose predictions would be "
                             "meaningless; refusing to predict with it")
        self.device = _resolve_device(device)
        self.net = model.eval().to(self.device)
        if keypoint_spec is None:
            kp = getattr(model, "keypoints", None) or "coco"
            keypoint_spec = kp if isinstance(kp, KeypointSpec) else get_keypoint_spec(str(kp))
        self.spec = keypoint_spec
        norm = normalization or getattr(model, "normalization", None)
        if not isinstance(norm, InputNormalization):
            norm = InputNormalization.from_dict(norm)
        self.normalization = norm
        size = input_size or getattr(model, "input_size", None) or \
            DEFAULT_INPUT_SIZE.get(self.spec.name, (192, 256))
        self.input_size = (int(size[0]), int(size[1]))
        self.batch_size = max(1, int(batch_size))
        codec = getattr(model, "codec", None)
        recorded = {**(codec.to_dict() if codec is not None else {}), **(getattr(model, "test_settings", None) or {})}

        def setting(given, name, default):
            if given is not None:
                return given
            return recorded[name] if recorded.get(name) is not None else default

        self.flip = bool(setting(flip, "flip", True))
        self.flip_shift = bool(setting(flip_shift, "flip_shift", False))
        self.decode = str(setting(decode, "decode", "authors"))
        self.shift = float(setting(shift, "shift", 0.25))
        self.blur_kernel = int(setting(blur_kernel, "blur_kernel", DEFAULT_BLUR.get(self.spec.name, 5)))
        self.x_ext, self.y_ext = float(x_ext), float(y_ext)
        self.rescore, self.score_threshold = rescore, float(score_threshold)
        self.oks_nms, self.nms_threshold = oks_nms, nms_threshold
        self.det_score_thr = float(det_score_thr)
        self.category_id = int(category_id)

    # ------------------------------------------------------------------ core
    @torch.no_grad()
    def heatmaps(self, batch: np.ndarray) -> np.ndarray:
        """Normalised crops [N, 3, H, W] -> heatmaps [N, K, H/4, W/4] (flip test if enabled)."""
        out = []
        for start in range(0, batch.shape[0], self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch[start:start + self.batch_size])).to(self.device)
            hm = flip_test(self.net, x, self.spec.flip_index, self.flip_shift) if self.flip else self.net(x)
            if not bool(torch.isfinite(hm).all()):
                raise BadInputError("the network's heatmaps contain NaN/Inf: its predictions would be "
                                 "meaningless; refusing to write them")
            out.append(hm.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.spec.num_keypoints, 1, 1), np.float32)

    def crops(self, image_bgr: np.ndarray, boxes: np.ndarray):
        """Person boxes [P, 4] xywh -> (normalised crops [P, 3, H, W], centers [P, 2], scales [P, 2])."""
        w, h = self.input_size
        centers, scales, crops = [], [], []
        for box in np.asarray(boxes, np.float64).reshape(-1, 4):
            c, s = box_to_center_scale(box, w / h, self.x_ext, self.y_ext)
            m = crop_affine(c, s, 0.0, self.input_size)
            crop = cv2.warpAffine(image_bgr, m, (w, h), flags=cv2.INTER_LINEAR)
            centers.append(c)
            scales.append(s)
            crops.append(self.normalization(crop))
        if not crops:
            return np.zeros((0, 3, h, w), np.float32), np.zeros((0, 2)), np.zeros((0, 2))
        return np.stack(crops), np.stack(centers), np.stack(scales)

    def _finish(self, item: _Item, coords, scores) -> PoseResult:
        inst = instance_scores(scores, item.box_scores, self.rescore, self.score_threshold) \
            if len(item.boxes) else np.zeros(0)
        keep = np.arange(len(inst))
        if self.oks_nms and len(inst) > 1:
            areas = item.boxes[:, 2] * item.boxes[:, 3]
            mode = "soft" if self.oks_nms in ("soft", "soft_oks", "soft_oks_nms") else "oks"
            if mode == "oks":
                keep = oks_nms(coords, inst, areas, self.nms_threshold or 0.9, self.spec.sigmas)
            else:
                keep, decayed = soft_oks_nms(coords, inst, areas, self.nms_threshold or 0.3, self.spec.sigmas)
                inst = inst.copy()
                inst[keep] = decayed
            keep = np.sort(keep)
        return PoseResult(coords[keep], scores[keep], item.boxes[keep], item.box_scores[keep], inst[keep],
                          item.image_id, item.file_name, item.frame)

    def _process(self, group: list[_Item]) -> Iterator[PoseResult]:
        parts = [self.crops(it.image, it.boxes) for it in group]
        batch = np.concatenate([p[0] for p in parts])
        if batch.shape[0]:
            hm = self.heatmaps(batch)
            centers = np.concatenate([p[1] for p in parts])
            scales = np.concatenate([p[2] for p in parts])
            coords, scores = decode_heatmaps(hm, centers, scales, self.input_size, method=self.decode,
                                             blur_kernel=self.blur_kernel, shift=self.shift)
        k = self.spec.num_keypoints
        start = 0
        for it, p in zip(group, parts):
            n = p[0].shape[0]
            if n == 0:
                yield self._finish(it, np.zeros((0, k, 2)), np.zeros((0, k)))
            else:
                yield self._finish(it, coords[start:start + n], scores[start:start + n])
            start += n

    def _stream(self, items: Iterable[_Item]) -> Iterator[PoseResult]:
        # gather whole images until a batch is full, so small images with one box still batch well
        group, count = [], 0
        for it in items:
            group.append(it)
            count += len(it.boxes)
            if count >= self.batch_size:
                yield from self._process(group)
                group, count = [], 0
        if group:
            yield from self._process(group)

    # ------------------------------------------------------------------ python API
    def predict_image(self, image_bgr: np.ndarray, boxes=None, box_scores=None, image_id: int = 0,
                      file_name: str = "") -> PoseResult:
        """People in one uint8 BGR image: ``boxes`` [P, 4] xywh (None: the whole image is one person;
        an empty array: nobody, an empty result)."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError("predict_image needs an HxWx3 uint8 BGR image (as cv2.imread returns)")
        if boxes is None:
            h, w = image_bgr.shape[:2]
            boxes, box_scores = np.array([[0.0, 0.0, w, h]]), np.ones(1)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if box_scores is None:
            box_scores = np.ones(len(boxes))
        box_scores = np.asarray(box_scores, np.float64).reshape(-1)
        valid = np.array([box_is_valid(b) for b in boxes], bool).reshape(-1)
        if not valid.all():
            warnings.warn(f"skipped {int((~valid).sum())} boxes of zero size or with NaN/Inf values: "
                          f"{boxes[~valid][:3].tolist()}", stacklevel=2)
            boxes, box_scores = boxes[valid], box_scores[valid]
        return next(self._stream([_Item(image_bgr, boxes, box_scores, image_id, file_name)]))

    def _boxes_for(self, image, detections: Detections | None, image_id, file_name, missing: list):
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

    def run(self, inputs, output_dir, detections=None, image_ids=None, draw: bool = True,
            score_thr: float = 0.3, results_name: str = "results.json") -> PredictionRun:
        """Predict every image and video of ``inputs`` (files and/or folders) and write
        ``output_dir/results.json`` (COCO results plus ``bbox`` and ``file_name``), pictures
        ``output_dir/pictures/<name>.png`` and videos ``output_dir/videos/<name>.mp4``.

        ``detections``: a detections file path, a ``Detections`` or None (whole image). ``image_ids``:
        a COCO annotation/image-info file mapping file names to ids (default: the file name's number,
        as COCO names are, else the running index)."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if detections is not None and not isinstance(detections, Detections):
            detections = Detections.load(detections, category_id=self.category_id,
                                         score_thr=self.det_score_thr)
        name_to_id = _load_image_ids(image_ids) if image_ids else {}
        files = list_inputs(inputs)
        run = PredictionRun(results_path=out / results_name)
        if detections is not None:
            run.skipped += [{"file_name": detections.source, "reason": f"box of zero size or NaN/Inf: {b}"}
                            for b in detections.invalid]
        results: list[dict] = []
        images = [f for f in files if f.suffix.lower() not in VIDEO_EXTS]
        videos = [f for f in files if f.suffix.lower() in VIDEO_EXTS]
        ids = ImageIds([f.name for f in images], name_to_id)
        used_names: set[str] = set()
        read: list[Path] = []

        def image_items() -> Iterator[_Item]:
            for f in images:
                img, reason = read_image_checked(f)
                if img is None:
                    log.warning("skipping %s: %s", f, reason)
                    run.skipped.append({"file_name": str(f), "reason": reason})
                    continue
                image_id = ids.for_image(f.name)
                boxes, scores = self._boxes_for(img, detections, image_id, f.name, run.images_without_boxes)
                read.append(f)
                yield _Item(img, boxes, scores, image_id, f.name)

        for res in self._stream(image_items()):
            item_file = read.pop(0)
            results.extend(res.to_coco(self.category_id))
            run.num_images += 1
            run.num_people += len(res)
            if draw:
                # re-read rather than keep every decoded image alive while batches fill
                img, _ = read_image_checked(item_file)
                pic = draw_result(img, res, self.spec, score_thr)
                path = _unique(out / "pictures" / f"{item_file.stem}.png", used_names)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), pic):
                    raise OSError(f"could not write {path}")
                run.pictures.append(path)
        for v in videos:
            try:
                vid_results, video_path, n_frames, n_people = self.run_video(
                    v, out / "videos", detections=detections, draw=draw, score_thr=score_thr,
                    missing=run.images_without_boxes, ids=ids)
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

    def run_video(self, path, output_dir, detections: Detections | None = None, draw: bool = True,
                  score_thr: float = 0.3, missing: list | None = None, ids: ImageIds | None = None):
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

        def items() -> Iterator[_Item]:
            idx = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame)
                boxes, scores = self._boxes_for(frame, detections, idx, f"{path.name}#{idx}", missing)
                yield _Item(frame, boxes, scores, ids.new() if ids is not None else idx, f"{path.name}#{idx}",
                            frame=idx)
                idx += 1

        try:
            for res in self._stream(items()):
                frame = frames.pop(0)
                results.extend(res.to_coco(self.category_id))
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
                    writer.write(draw_result(frame, res, self.spec, score_thr))
        finally:
            cap.release()
            if writer is not None:
                writer.release()
        if n_frames == 0:
            warnings.warn(f"video {path} opened but yielded no frames", stacklevel=2)
        return results, out_path, n_frames, n_people


def draw_result(image_bgr: np.ndarray, result: PoseResult, spec: KeypointSpec, score_thr: float = 0.3):
    from rsn_lightning.inference.visualize import draw_pose

    return draw_pose(image_bgr, result.keypoints, result.scores, spec, score_thr=score_thr)


class VideoUnreadable(OSError):
    """A video file OpenCV cannot open (skipped by ``Predictor.run``)."""


def _load_image_ids(path) -> dict[str, int]:
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
