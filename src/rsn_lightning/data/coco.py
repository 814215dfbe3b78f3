"""COCO-format keypoint datasets (COCO 2017, the authors' 2014 minival split, the synthetic set, or any
COCO-format root with its own keypoint category) on ground-truth or detected person boxes.

Unusable entries are dropped while indexing, never at random during training: a missing, truncated or
unreadable image, a box of zero size or outside its image, an annotation with the wrong number of
keypoints or none labelled. Joints with NaN or negative coordinates, or beyond the image, are unlabelled
individually. Each reason is counted and logged once (``SkipReport``; skipped entries and unlabelled
joints are counted apart). An image that passes the header check but fails to decode later (including a
JPEG whose body libjpeg reports corrupt) is replaced by a grey image with all target weights 0, counted
and logged, so an epoch never stops half way and is never trained on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsn_lightning.data.images import SkipReport
from rsn_lightning.data.index_cache import load_or_build, pack_records, unpack_records
from rsn_lightning.data.topdown import ImageIndex, TopDownDataset, clean_joints, clip_box, finite_box, unlabel_outside
from rsn_lightning.errors import load_json
from rsn_lightning.keypoints import COCO_KEYPOINTS, KeypointSpec

log = logging.getLogger(__name__)

# Standard layouts under a root folder: (train ann, train images, val ann, val images, val detections).
# "minival2014" is the authors' (RSN/MSPN) layout: train on train+val2014 minus minival, test on minival.
COCO_LAYOUTS = {
    "coco2017": {
        "train_ann_file": "annotations/person_keypoints_train2017.json",
        "train_image_dir": "train2017",
        "val_ann_file": "annotations/person_keypoints_val2017.json",
        "val_image_dir": "val2017",
        "det_file": "person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
    },
    "minival2014": {
        "train_ann_file": "gt_json/train_val_minus_minival_2014.json",
        "train_image_dir": ["images/train2014", "images/val2014"],
        "val_ann_file": "gt_json/minival_2014.json",
        "val_image_dir": "images/val2014",
        "det_file": "det_json/minival_2014_det.json",
    },
    "synthetic": {
        "train_ann_file": "annotations/person_keypoints_train.json",
        "train_image_dir": "images/train",
        "val_ann_file": "annotations/person_keypoints_val.json",
        "val_image_dir": "images/val",
        "det_file": "annotations/person_detections_val.json",
    },
}


def layout_paths(root, layout: str) -> dict:
    """Absolute paths of a standard layout under ``root``."""
    if layout not in COCO_LAYOUTS:
        raise ValueError(f"unknown COCO layout '{layout}'; known: {sorted(COCO_LAYOUTS)}")
    root = Path(root)
    out = {}
    for key, rel in COCO_LAYOUTS[layout].items():
        out[key] = [str(root / r) for r in rel] if isinstance(rel, list) else str(root / rel)
    return out


def keypoint_category(coco: dict, path) -> dict:
    cats = [c for c in coco.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        raise ValueError(f"{path} has no category with 'keypoints': not a COCO keypoint annotation file")
    return cats[0]


def spec_for_category(category: dict, flip_pairs=None, sigmas=None, name: str = "custom") -> KeypointSpec:
    """COCO's own spec for the standard 17 keypoints, else a custom spec from the category."""
    if list(category["keypoints"]) == list(COCO_KEYPOINTS.names) and flip_pairs is None and sigmas is None:
        return COCO_KEYPOINTS
    return KeypointSpec.from_coco_category(category, flip_pairs=flip_pairs, sigmas=sigmas, name=name)


class CocoKeypointDataset(TopDownDataset):
    """Persons of a COCO-format keypoint file, on ground-truth boxes or on a detection results file.

    ``det_file``: a COCO results list ``[{"image_id", "category_id", "bbox", "score"}, ...]``; when
    given, samples are the detections with score >= ``det_score_threshold`` (no joints); otherwise
    they are the non-crowd annotations with at least ``min_labelled`` labelled joints.
    """

    kind = "coco"

    def __init__(self, ann_file, image_dir, transform=None, spec: KeypointSpec | None = None,
                 det_file=None, det_score_threshold: float = 0.0, min_labelled: int = 1,
                 check_images: bool = True, clip_boxes: bool = True, name: str | None = None):
        self.ann_file = str(ann_file)
        self.det_file = str(det_file) if det_file else None
        self.clip_boxes = clip_boxes
        name = name or Path(ann_file).stem + (" (detections)" if det_file else "")
        images = ImageIndex(image_dir, check_images)  # fails here on a missing folder, cached index or not
        # parsed and checked once per node and annotation file version, then read (index_cache.py)
        settings = {"image_dirs": [[str(d), os.path.abspath(d)] for d in images.dirs], "check_images": check_images,
                    "clip_boxes": clip_boxes, "min_labelled": min_labelled,
                    "num_keypoints": spec.num_keypoints if spec is not None else None,
                    "det_score_threshold": float(det_score_threshold) if det_file else None}
        files = [self.ann_file] + ([self.det_file] if self.det_file else [])
        index = load_or_build("coco", files, settings, lambda: self._index(
            spec, images, det_score_threshold, min_labelled), name)
        category = index["category"]
        spec = spec or spec_for_category(category)
        self.category_id = category.get("id", 1)
        records = unpack_records(index["records"])
        skipped = SkipReport.from_state(name, index["skipped"])
        super().__init__(records, spec, transform, name, skipped)
        skipped.log(log, len(records))

    def _index(self, spec, images: ImageIndex, det_score_threshold, min_labelled) -> dict:
        """Parse the annotation (and detection) file and check every image: the cached index's payload."""
        ann_file = self.ann_file
        coco = load_json(ann_file, "COCO annotation file")
        if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
                or not isinstance(coco.get("annotations"), list):
            raise ValueError(f"{ann_file} is not a COCO annotation file "
                             "(needs 'images' and 'annotations' lists)")
        category = keypoint_category(coco, ann_file)
        spec = spec or spec_for_category(category)
        if spec.num_keypoints != len(category["keypoints"]):
            raise ValueError(f"{ann_file}: category has {len(category['keypoints'])} keypoints but the "
                             f"keypoint set '{spec.name}' has {spec.num_keypoints}")
        self.category_id = category.get("id", 1)
        skipped = SkipReport("index")
        image_info = {}
        for im in coco["images"]:
            if isinstance(im, dict) and "id" in im and "file_name" in im:
                image_info[im["id"]] = im
        if self.det_file:
            records = self._detections(self.det_file, det_score_threshold, image_info, images, spec, skipped)
        else:
            records = self._annotations(coco["annotations"], image_info, images, spec, min_labelled, skipped)
        return {"category": category, "records": pack_records(records), "skipped": skipped.state()}

    # ------------------------------------------------------------------ indexing
    def _image(self, image_id, image_info, images: ImageIndex, skipped: SkipReport, what: str):
        info = image_info.get(image_id)
        if info is None:
            skipped.add(f"{what} for an image not in the annotation file", str(image_id))
            return None
        path, w, h, reason = images.resolve(info["file_name"], info.get("width"), info.get("height"))
        if reason:
            skipped.add(reason, path)
            return None
        return path, w, h

    def _box(self, bbox, w, h, skipped: SkipReport, example: str):
        box = finite_box(bbox)
        if box is None:
            skipped.add("box of zero, negative or invalid size", example)
            return None
        if self.clip_boxes:
            clipped = clip_box(box, w, h)
            if clipped is None:
                skipped.add("box outside the image", example)
                return None
            box = clipped
        return box

    def _annotations(self, anns, image_info, images, spec, min_labelled, skipped) -> list[dict]:
        records = []
        k = spec.num_keypoints
        for ann in anns:
            if not isinstance(ann, dict):
                skipped.add("malformed annotation entry")
                continue
            aid = ann.get("id", "?")
            if ann.get("category_id", self.category_id) != self.category_id:
                skipped.add("not the keypoint category", f"ann {aid}")
                continue
            if ann.get("iscrowd", 0):
                skipped.add("crowd annotation", f"ann {aid}")
                continue
            joints, bad = clean_joints(ann.get("keypoints"), k)
            if joints is None:
                skipped.add(f"wrong number of keypoints (expected {k})", f"ann {aid}")
                continue
            skipped.add_joints("NaN or negative coordinates", bad, f"ann {aid}")
            found = self._image(ann.get("image_id"), image_info, images, skipped, "annotation")
            if found is None:
                continue
            path, w, h = found
            skipped.add_joints("beyond the image", unlabel_outside(joints, w, h), f"ann {aid}")
            if int((joints[:, 2] > 0).sum()) < max(1, min_labelled):
                skipped.add("no labelled joints", f"ann {aid}")
                continue
            box = self._box(ann.get("bbox"), w, h, skipped, f"ann {aid}")
            if box is None:
                continue
            records.append(self._record(path, w, h, ann["image_id"], box, joints, 1.0,
                                        float(ann.get("area", box[2] * box[3])), aid))
        return records

    def _detections(self, det_file, threshold, image_info, images, spec, skipped) -> list[dict]:
        dets = load_json(det_file, "person detection file")
        if not isinstance(dets, list):
            raise ValueError(f"{det_file} is not a COCO detection results list")
        records = []
        zeros = np.zeros((spec.num_keypoints, 3), np.float32)
        for i, det in enumerate(dets):
            if not isinstance(det, dict) or "image_id" not in det:
                skipped.add("malformed detection entry", f"#{i}")
                continue
            if det.get("category_id", self.category_id) != self.category_id:
                skipped.add("not the keypoint category", f"#{i}")
                continue
            try:
                score = float(det.get("score", 1.0))
            except (TypeError, ValueError):
                score = float("nan")
            if not np.isfinite(score):
                skipped.add("detection score not a finite number", f"#{i}")
                continue
            if not score >= threshold:
                skipped.add("detection below score threshold", f"#{i}")
                continue
            found = self._image(det["image_id"], image_info, images, skipped, "detection")
            if found is None:
                continue
            path, w, h = found
            box = self._box(det.get("bbox"), w, h, skipped, f"detection #{i}")
            if box is None:
                continue
            records.append(self._record(path, w, h, det["image_id"], box, zeros, score, 0.0, -1))
        return records

    @staticmethod
    def _record(path, w, h, image_id, box, joints, score, area, ann_id) -> dict:
        x, y, bw, bh = box
        return {
            "image_path": path, "width": w, "height": h, "image_id": int(image_id),
            "center": np.array([x + bw * 0.5, y + bh * 0.5], np.float32),
            "scale": np.array([bw, bh], np.float32),
            "joints": joints, "box_score": float(score), "area": float(area), "ann_id": ann_id,
        }

    @property
    def image_ids(self) -> Sequence[int]:
        return [r["image_id"] for r in self.records]
