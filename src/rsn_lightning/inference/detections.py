"""Person boxes for rsn-predict and the Predictor: a COCO detections file or a {file name: boxes} mapping,
parsed once, with boxes no crop can be cut from (zero size, NaN/Inf) left out and listed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


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
