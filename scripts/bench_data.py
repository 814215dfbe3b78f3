"""Data pipeline throughput of one process: full training samples/s vs JPEG decode-only/s.

A full sample is what one DataLoader worker produces for training: decode, augmented crop (one warp),
all target levels, normalisation. The decode-only rate (cv2 decode of the same files, nothing else)
is the ceiling. Both are measured interleaved in rounds, so load from other processes affects them
alike. The same measurement is part of ``rsn-bench --data-seconds S`` (which also says how many workers
feed the measured training rate); this script runs it alone on a COCO-format folder.

    python scripts/bench_data.py [--root COCO_MINI_DIR] [--seconds 5] [--input 192 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsn_lightning.bench.data import bench_data


def main() -> None:
    default_root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(default_root), help="folder with the annotation file and its images")
    p.add_argument("--ann", default="test_coco.json")
    p.add_argument("--seconds", type=float, default=5.0, help="time per measurement, split in rounds")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--input", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    args = p.parse_args()
    root = Path(args.root)
    if not (root / args.ann).is_file():
        raise SystemExit(f"bench_data: no {args.ann} under {root}: pass --root and --ann (a COCO-format folder)")
    r = bench_data(root, args.ann, tuple(args.input), args.seconds, args.rounds, progress=lambda *_: None)
    print(f"images: {r['num_images']} JPEGs, {r['num_persons']} persons; input {r['input']}, 5 target levels, "
          "1 thread")
    print(f"decode only : {r['decode_images_per_s']:8.1f} images/s")
    print(f"full sample : {r['samples_per_s_per_worker']:8.1f} samples/s")
    print(f"ratio       : {r['sample_to_decode']:8.2f}  (goal >= 0.70)")


if __name__ == "__main__":
    main()
