"""MPII in the common JSON form (HRNet's ``train.json`` / ``valid.json``): a list of
``{"image", "center", "scale", "joints", "joints_vis"}``, 16 joints, MATLAB (1-based) pixel coordinates,
``scale`` = person height / 200 px.

As the authors' loader: coordinates are shifted to 0-based, the box centre is moved down by
``15 * scale`` px (the centre marks the torso, the box should cover the legs), the box is a square of
``scale * 200`` px (enlarged x1.25 by the MPII augmentation preset), and labelled joints get
visibility 2 so the loss's "visible" test counts them all.

PCKh needs each person's head size. The official evaluation uses ``SC_BIAS (0.6) x the head-box
diagonal`` from ``gt_valid.mat`` (pass it as ``head_boxes``: that .mat, or a .json/.npy of [N, 4]
``x1, y1, x2, y2`` boxes in the JSON's order, or a ``head_box`` key per entry). The JSON alone has no
head boxes; the fallback is the head segment length ``|head_top - upper_neck|`` (which MPII derives from
the head box; it equals ``scale * 200 / 6`` in the released files). It is the quantity the
0.6 x diagonal stands in for, but PCKh with it is not exactly the official number.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from rsn_lightning.data.images import SkipReport
from rsn_lightning.data.index_cache import load_or_build, pack_records, unpack_records
from rsn_lightning.data.topdown import ImageIndex, TopDownDataset, unlabel_outside
from rsn_lightning.errors import load_json
from rsn_lightning.keypoints import MPII_KEYPOINTS, KeypointSpec

log = logging.getLogger(__name__)

SC_BIAS = 0.6
HEAD_TOP, UPPER_NECK = 9, 8
# the authors' MPII loader: box centre moved down by 15 x scale pixels before the 1-based shift
CENTER_Y_SHIFT = 15.0
PIXEL_STD = 200.0


def load_head_boxes(path) -> tuple[np.ndarray, dict]:
    """Head boxes [N, 4] (x1, y1, x2, y2), plus the official ground truth when ``path`` is gt_valid.mat
    (``joints`` [N, 16, 2] 0-based and ``visible`` [N, 16])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII head box file not found: {path}")
    extra = {}
    if path.suffix == ".mat":
        from rsn_lightning.extras import import_extra

        scipy_io = import_extra("scipy.io", "mpii", f"reading MPII's .mat head boxes ({path})")
        mat = scipy_io.loadmat(str(path))
        if "headboxes_src" not in mat:
            raise ValueError(f"{path} has no 'headboxes_src': not MPII's gt_valid.mat")
        hb = np.asarray(mat["headboxes_src"], np.float64)  # [2 corners, 2 xy, N]
        boxes = np.concatenate([hb[0].T, hb[1].T], axis=1)
        if "pos_gt_src" in mat and "jnt_missing" in mat:
            extra["joints"] = np.transpose(np.asarray(mat["pos_gt_src"], np.float64), (2, 0, 1)) - 1.0
            extra["visible"] = (1 - np.asarray(mat["jnt_missing"]).T).astype(np.float32)
    elif path.suffix == ".npy":
        boxes = np.load(path).astype(np.float64).reshape(-1, 4)
    else:
        boxes = np.asarray(load_json(path, "MPII head box file"), np.float64).reshape(-1, 4)
    return boxes, extra


class MPIIDataset(TopDownDataset):
    kind = "mpii"

    def __init__(self, ann_file, image_dir, transform=None, spec: KeypointSpec = MPII_KEYPOINTS,
                 head_boxes=None, check_images: bool = True, require_joints: bool = True,
                 name: str | None = None, report_head_source: bool = True):
        self.ann_file = str(ann_file)
        name = name or Path(ann_file).stem
        images = ImageIndex(image_dir, check_images)  # fails here on a missing folder, cached index or not
        # parsed and checked once per node and annotation file version, then read (index_cache.py); the
        # head boxes are applied after, so they are not part of the index
        settings = {"image_dirs": [[str(d), os.path.abspath(d)] for d in images.dirs], "check_images": check_images,
                    "require_joints": require_joints, "num_keypoints": spec.num_keypoints}
        index = load_or_build("mpii", [self.ann_file], settings,
                              lambda: self._index(spec.num_keypoints, images, require_joints), name)
        skipped = SkipReport.from_state(name, index["skipped"])
        boxes, official = (None, {})
        if head_boxes is not None:
            boxes, official = load_head_boxes(head_boxes)
            if len(boxes) != index["num_entries"]:
                raise ValueError(f"{head_boxes} has {len(boxes)} head boxes for {index['num_entries']} persons in "
                                 f"{ann_file}: they must be in the same order")
        self.head_source = "head boxes" if boxes is not None else "head segment (fallback)"
        entry_head_boxes = index["entry_head_boxes"]
        records = []
        for rec in unpack_records(index["records"]):
            i = rec["entry"]
            box = boxes[i] if boxes is not None else entry_head_boxes.get(i)
            rec["head_size"] = self._head_size(box, rec)
            if official:
                rec["gt_joints"] = official["joints"][i].astype(np.float32)
                rec["gt_visible"] = official["visible"][i]
            records.append(rec)
        # image_id: the image's position among the distinct images, in order of first appearance
        image_ids: dict[str, int] = {}
        for r in records:
            r["image_id"] = image_ids.setdefault(r["image_name"], len(image_ids))
        super().__init__(records, spec, transform, name, skipped)
        skipped.log(log, len(records))
        if boxes is None and report_head_source:
            log.info("%s: no head boxes given; PCKh uses the head segment |head_top - upper_neck| as the "
                     "head size (pass gt_valid.mat as head_boxes for the official numbers)", name)

    def _index(self, k: int, images: ImageIndex, require_joints: bool) -> dict:
        """Parse the annotation file and check every image: the cached index's payload."""
        entries = load_json(self.ann_file, "MPII annotation file")
        if not isinstance(entries, list):
            raise ValueError(f"{self.ann_file} is not an MPII JSON list of persons")
        skipped = SkipReport("index")
        records, entry_head_boxes = [], {}
        for i, e in enumerate(entries):
            rec = self._record(e, i, k, images, skipped, require_joints)
            if rec is None:
                continue
            if e.get("head_box") is not None:
                entry_head_boxes[i] = e["head_box"]
            records.append(rec)
        return {"num_entries": len(entries), "records": pack_records(records), "skipped": skipped.state(),
                "entry_head_boxes": entry_head_boxes}

    @staticmethod
    def _record(e, i, k, images: ImageIndex, skipped: SkipReport, require_joints: bool) -> dict | None:
        if not isinstance(e, dict) or "image" not in e:
            skipped.add("malformed entry", f"#{i}")
            return None
        try:
            center = np.asarray(e["center"], np.float64).reshape(2)
            s = float(e["scale"])
        except (KeyError, TypeError, ValueError):
            skipped.add("missing or invalid center/scale", f"#{i}")
            return None
        if not (np.isfinite(center).all() and np.isfinite(s) and s > 0):
            skipped.add("box of zero, negative or invalid size", f"#{i}")
            return None
        joints = np.zeros((k, 3), np.float32)
        if "joints" in e:
            try:
                xy = np.asarray(e["joints"], np.float64).reshape(-1, 2)
                vis = np.asarray(e.get("joints_vis", np.ones(len(xy))), np.float64).reshape(-1)
            except (TypeError, ValueError):
                xy, vis = np.zeros((0, 2)), np.zeros(0)
            if len(xy) != k or len(vis) != k:
                skipped.add(f"wrong number of keypoints (expected {k})", f"#{i}")
                return None
            xy = xy - 1.0
            with np.errstate(invalid="ignore"):
                bad = (vis > 0) & ~(np.isfinite(xy).all(axis=1) & (xy >= 0).all(axis=1))
            skipped.add_joints("NaN or negative coordinates", int(bad.sum()), f"#{i}")
            vis = np.where(bad | ~np.isfinite(vis), 0.0, vis)
            xy[vis <= 0] = 0.0
            joints[:, :2] = xy
            joints[:, 2] = (vis > 0) * 2.0
        path, w, h, reason = images.resolve(str(e["image"]))
        if reason:
            skipped.add(reason, path)
            return None
        skipped.add_joints("beyond the image", unlabel_outside(joints, w, h), f"#{i}")
        if require_joints and not (joints[:, 2] > 0).any():
            skipped.add("no labelled joints", f"#{i}")
            return None
        if center[0] != -1:
            center[1] += CENTER_Y_SHIFT * s
        center -= 1.0
        side = s * PIXEL_STD
        if not (-side / 2 < center[0] < w + side / 2 and -side / 2 < center[1] < h + side / 2):
            skipped.add("box outside the image", f"#{i}")
            return None
        return {
            "image_path": path, "width": w, "height": h, "image_id": -1, "image_name": str(e["image"]),
            "center": center.astype(np.float32), "scale": np.array([side, side], np.float32),
            "joints": joints, "box_score": 1.0, "area": 0.0, "entry": i,
            "person_scale": s,
        }

    @staticmethod
    def _head_size(box, rec) -> float:
        if box is not None:
            b = np.asarray(box, np.float64).reshape(4)
            return float(SC_BIAS * np.linalg.norm(b[2:4] - b[0:2]))
        j = rec["joints"]
        if j[HEAD_TOP, 2] > 0 and j[UPPER_NECK, 2] > 0:
            return float(np.linalg.norm(j[HEAD_TOP, :2] - j[UPPER_NECK, :2]))
        # MPII's released scale is 6 head segments per 200 px of scale
        return float(rec["person_scale"] * PIXEL_STD / 6.0)

    @property
    def head_sizes(self) -> np.ndarray:
        return np.array([r["head_size"] for r in self.records], np.float64)

    def pckh_ground_truth(self, indices) -> dict[str, np.ndarray]:
        """What ``evaluation.pckh`` needs for these sample indices: ``joints`` [N, K, 2] (0-based image
        px), ``visible`` [N, K] and ``head_size`` [N] (already SC_BIAS x diagonal or the fallback)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        recs = [self.records[i] for i in idx]
        joints = np.stack([r.get("gt_joints", r["joints"][:, :2]) for r in recs]) if recs else \
            np.zeros((0, self.spec.num_keypoints, 2))
        visible = np.stack([r.get("gt_visible", (r["joints"][:, 2] > 0).astype(np.float32)) for r in recs]) \
            if recs else np.zeros((0, self.spec.num_keypoints))
        head = np.array([r["head_size"] for r in recs], np.float64)
        return {"joints": joints.astype(np.float64), "visible": visible.astype(np.float32), "head_size": head}
