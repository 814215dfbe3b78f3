"""Data pipeline throughput of one process: full training samples/s vs JPEG decode-only/s.

A full sample is what one DataLoader worker produces for training: decode, augmented crop (one warp),
all target levels, normalisation. The decode-only rate (cv2 decode of the same files, nothing else)
is the ceiling; the goal is a full sample at >= 70% of it. Both are measured in this run, interleaved
in rounds so load from other processes affects them alike.

    python scripts/bench_data.py [--root COCO_MINI_DIR] [--seconds 5] [--input 192 256]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    default_root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(default_root), help="folder with test_coco.json and its images")
    p.add_argument("--ann", default="test_coco.json")
    p.add_argument("--seconds", type=float, default=5.0, help="time per measurement, split in rounds")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--input", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    args = p.parse_args()
    # one worker process = one thread, as in a DataLoader worker
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from rsn_lightning.data.coco import CocoKeypointDataset
    from rsn_lightning.data.images import read_image
    from rsn_lightning.data.transforms import TopDownTransform
    from rsn_lightning.keypoints import COCO_KEYPOINTS

    root = Path(args.root)
    t = TopDownTransform(tuple(args.input), COCO_KEYPOINTS, train=True)
    t.seed(0)
    ds = CocoKeypointDataset(root / args.ann, root, t)
    paths = [r["image_path"] for r in ds.records]
    per_round = args.seconds / args.rounds

    def decode_only(deadline):
        n = 0
        while time.perf_counter() < deadline:
            img = read_image(paths[n % len(paths)])
            assert img is not None
            n += 1
        return n

    def full(deadline):
        n = 0
        while time.perf_counter() < deadline:
            s = ds[n % len(ds)]
            assert s["heatmaps"].shape[0] == 5
            n += 1
        return n

    full(time.perf_counter() + 0.3)  # warm caches (kernel tables, file cache)
    counts = {"decode": 0, "full": 0}
    elapsed = {"decode": 0.0, "full": 0.0}
    for _ in range(args.rounds):
        for name, fn in (("decode", decode_only), ("full", full)):
            t0 = time.perf_counter()
            counts[name] += fn(t0 + per_round)
            elapsed[name] += time.perf_counter() - t0
    dec = counts["decode"] / elapsed["decode"]
    ful = counts["full"] / elapsed["full"]
    sizes = {cv2.imread(p).shape[:2] for p in paths}
    print(f"images: {len(set(paths))} JPEGs ({', '.join(f'{w}x{h}' for h, w in sorted(sizes))}), "
          f"{len(ds)} persons; input {args.input[0]}x{args.input[1]}, 5 target levels, 1 thread")
    print(f"decode only : {dec:8.1f} images/s")
    print(f"full sample : {ful:8.1f} samples/s")
    print(f"ratio       : {ful / dec:8.2f}  (goal >= 0.70)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
