"""The evaluation workload: a generated COCO-scale keypoint results file scored by each COCO backend."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_keypoint_results(num_images: int = 5000, dets_per_image: int = 20, seed: int = 0):
    """A COCO person-keypoint ground truth and a results list of ``num_images * dets_per_image``
    detections (noisy copies of the people and random false positives), as plain dicts."""
    from rsn_lightning.keypoints import COCO_KEYPOINTS

    rng = np.random.default_rng(seed)
    k = COCO_KEYPOINTS.num_keypoints
    images, anns, results = [], [], []
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": 640, "height": 480, "file_name": f"{img_id:012d}.jpg"})
        people = []
        for _ in range(int(rng.integers(1, 4))):
            bw, bh = rng.uniform(40, 300), rng.uniform(80, 400)
            x0, y0 = rng.uniform(0, 640 - bw), rng.uniform(0, 480 - bh)
            kps = np.stack([x0 + rng.uniform(0, bw, k), y0 + rng.uniform(0, bh, k),
                            rng.choice([0, 1, 2], k, p=[0.2, 0.1, 0.7])], axis=1)
            kps[kps[:, 2] == 0, :2] = 0
            people.append((kps, (x0, y0, bw, bh)))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                         "area": float(bw * bh * 0.6), "bbox": [x0, y0, bw, bh],
                         "num_keypoints": int((kps[:, 2] > 0).sum()),
                         "keypoints": kps.round(2).reshape(-1).tolist()})
        for d in range(dets_per_image):
            if d < 2 * len(people):
                kps, (x0, y0, bw, bh) = people[d % len(people)]
                xy = kps[:, :2] + rng.normal(0, 0.05 * math.sqrt(bw * bh), (k, 2))
            else:
                bw, bh = rng.uniform(30, 200), rng.uniform(60, 300)
                xy = np.stack([rng.uniform(0, 640, k), rng.uniform(0, 480, k)], axis=1)
            pred = np.concatenate([xy, rng.uniform(0.1, 1, (k, 1))], axis=1)
            results.append({"image_id": img_id, "category_id": 1, "keypoints": pred.round(2).reshape(-1).tolist(),
                            "score": float(rng.uniform(0.05, 1))})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "supercategory": "person",
                          "keypoints": list(COCO_KEYPOINTS.names), "skeleton": []}]}
    return gt, results


def bench_eval(num_images: int = 5000, dets_per_image: int = 20, backends=("pycocotools", "faster_coco_eval"),
               progress=print) -> list[dict]:
    """Seconds to score a generated COCO-scale results file with each backend (load, evaluate,
    accumulate, summarise), and the largest difference of each backend's stats from the first's."""
    from rsn_lightning.evaluation.coco_eval import coco_keypoint_stats

    gt, results = synthetic_keypoint_results(num_images, dets_per_image)
    out = []
    with tempfile.TemporaryDirectory(prefix="rsn-bench-eval-") as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(results))
        reference = None
        for backend in backends:
            progress(f"  COCO evaluation of {len(results)} detections on {num_images} images with {backend}")
            entry = {"model": None, "input": None, "mode": f"coco-eval:{backend}", "batch": None,
                     "num_images": num_images, "num_detections": len(results)}
            try:
                t = time.perf_counter()
                stats = coco_keypoint_stats(gt_path, res_path, backend=backend)
                entry["eval_seconds"] = round(time.perf_counter() - t, 2)
            except ImportError as err:
                entry.update(eval_seconds=None, skipped=str(err))
                out.append(entry)
                continue
            entry["AP"] = round(stats["AP"], 6)
            if reference is None:
                reference = stats
            entry["max_stat_difference"] = max(abs(stats[k] - reference[k]) for k in reference)
            out.append(entry)
    return out
