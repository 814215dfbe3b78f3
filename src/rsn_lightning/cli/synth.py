"""rsn-synth: generate the synthetic COCO-format person-keypoint set (``rsn_lightning.synthetic``)."""

from __future__ import annotations

import sys
import time

from rsn_lightning.synthetic import DEFAULT_IMAGE_SIZE, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, MAX_PERSONS, generate


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="rsn-synth",
        description="Generate the synthetic COCO-format person keypoint dataset (images, annotations, "
        "val detections).",
    )
    parser.add_argument("root", help="output folder (a COCO-style root)")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN, help="train images")
    parser.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL, help="val images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"),
                        default=list(DEFAULT_IMAGE_SIZE), help="image width and height in pixels")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--max-persons", type=int, default=4, help=f"people per image, at most {MAX_PERSONS}")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if ROOT already holds a dataset")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)  # the bar goes to stderr, the report below to stdout
    kwargs = dict(num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                  image_size=tuple(args.image_size), workers=args.workers, jpeg_quality=args.jpeg_quality,
                  max_persons=args.max_persons, overwrite=args.overwrite)
    t0 = time.perf_counter()
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("drawing images", total=args.num_train + args.num_val)
            out = generate(args.root, **kwargs, progress=lambda done, total: bar.update(task, completed=done))
    except (ValueError, OSError) as e:
        print(f"rsn-synth: error: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    verb = "already there, reused" if out["reused"] else f"written in {dt:.2f} s"
    print(f"synthetic dataset in {out['root']} ({verb})")
    W, H = args.image_size
    print(f"  train: {out['num_train']} images ({W}x{H}) in {out['train_images']}, "
                  f"{out['num_train_persons']} persons in {out['train_annotations']}")
    print(f"  val:   {out['num_val']} images in {out['val_images']}, "
                  f"{out['num_val_persons']} persons in {out['val_annotations']}")
    print(f"  val detections: {out['num_detections']} boxes in {out['val_detections']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
