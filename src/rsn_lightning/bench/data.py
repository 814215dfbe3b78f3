"""The data workload: one loader worker's training samples/s beside JPEG decode alone."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def bench_data(root=None, ann_file: str | None = None, input_size=(192, 256), seconds: float = 5.0,
               rounds: int = 5, progress=print) -> dict:
    """Samples/s of one loader worker (decode, augmented warp, every target level, normalisation) beside
    JPEG decode alone, interleaved in rounds, one thread as in a DataLoader worker.

    ``root`` is a COCO-format folder with ``ann_file`` (default: a small synthetic set generated in a
    temporary folder)."""
    import cv2
    import torch

    from rsn_lightning.data.coco import CocoKeypointDataset, layout_paths
    from rsn_lightning.data.images import read_image
    from rsn_lightning.data.transforms import TopDownTransform
    from rsn_lightning.keypoints import COCO_KEYPOINTS

    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    tmp = None
    try:
        if root is None:
            from rsn_lightning.synthetic import generate

            tmp = tempfile.TemporaryDirectory(prefix="rsn-bench-data-")
            progress("  generating 40 synthetic images for the data benchmark")
            generate(tmp.name, num_train=40, num_val=1, seed=0, workers=1)
            paths = layout_paths(tmp.name, "synthetic")
            ann, image_dir, source = paths["train_ann_file"], paths["train_image_dir"], "synthetic (40 images)"
        else:
            ann, image_dir, source = Path(root) / ann_file, Path(root), str(root)
        transform = TopDownTransform(tuple(input_size), COCO_KEYPOINTS, train=True)
        transform.seed(0)
        ds = CocoKeypointDataset(ann, image_dir, transform)
        files = [r["image_path"] for r in ds.records]

        def decode_only(deadline):
            n = 0
            while time.perf_counter() < deadline:
                if read_image(files[n % len(files)]) is None:
                    raise OSError(f"cannot decode {files[n % len(files)]}")
                n += 1
            return n

        def full(deadline):
            n = 0
            while time.perf_counter() < deadline:
                ds[n % len(ds)]
                n += 1
            return n

        full(time.perf_counter() + 0.3)  # warm caches (kernel tables, file cache)
        counts, elapsed = {"decode": 0, "full": 0}, {"decode": 0.0, "full": 0.0}
        for _ in range(rounds):
            for name, fn in (("decode", decode_only), ("full", full)):
                t0 = time.perf_counter()
                counts[name] += fn(t0 + seconds / rounds)
                elapsed[name] += time.perf_counter() - t0
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
        if tmp is not None:
            tmp.cleanup()
    decode = counts["decode"] / elapsed["decode"]
    sample = counts["full"] / elapsed["full"]
    return {"model": None, "input": f"{input_size[0]}x{input_size[1]}", "mode": "data", "batch": None,
            "source": source, "num_images": len(set(files)), "num_persons": len(ds),
            "decode_images_per_s": round(decode, 1), "samples_per_s_per_worker": round(sample, 1),
            "sample_to_decode": round(sample / decode, 3)}
