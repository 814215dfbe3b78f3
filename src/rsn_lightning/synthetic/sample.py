"""One image of the synthetic set: its random stream, its id, its JPEG file, its COCO annotations and
its detector-like boxes.

Every image is drawn from its own random stream seeded by (seed, split, index), so the bytes of the
whole folder depend on the parameters only, not on the number of worker processes.
Image ids are unique across splits (train 1.., val 100000001..), annotation id = image id * 100 + k.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rsn_lightning.synthetic.render import render_scene

DEFAULT_IMAGE_SIZE = (384, 288)
SPLITS = ("train", "val")
SPLIT_CODE = {"train": 1, "val": 2}
_ID_BASE = {"train": 0, "val": 100_000_000}


def image_id(split: str, index: int) -> int:
    return _ID_BASE[split] + index + 1


def _image_rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    # stream 1 (detections) is separate, so the detector noise never shifts what is drawn
    return np.random.default_rng([seed, SPLIT_CODE[split], index, stream])


def render_sample(seed: int, split: str, index: int, image_size=DEFAULT_IMAGE_SIZE, max_persons: int = 4):
    """Re-render image `index` of `split` exactly as `generate` draws it (image, label map, persons)."""
    return render_scene(_image_rng(seed, split, index), tuple(image_size), max_persons)


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


def make_image(task) -> tuple[dict, list[dict], list[dict]]:
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
