"""rsn-convert: the authors' or mmpose's RSN checkpoint -> this library's (``models.convert``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsn_lightning.codec import CodecError
from rsn_lightning.models.convert import SOURCES, convert_checkpoint

DESCRIPTION = "Convert the authors' (caiyuanhao1998/RSN) and mmpose's RSN checkpoints into this project's format."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rsn-convert", description=DESCRIPTION)
    parser.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        required=True,
        help="official: caiyuanhao1998/RSN ({'model': state_dict}); mmpose: mmpose 1.x RSN + MSPNHead",
    )
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument(
        "--keypoints",
        default=None,
        help="keypoint set name to record (default: coco for 17 keypoints, mpii for 16)",
    )
    parser.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        default=None,
        help="the input size to record in its codec (default: the authors', 192 256 for COCO, 256 256 for MPII)",
    )
    args = parser.parse_args(argv)
    try:
        net = convert_checkpoint(args.src, args.dst, args.source, args.keypoints, args.input_size)
    except CodecError as err:  # e.g. an --input-size that is no multiple of the heatmap stride
        parser.error(str(err))
    print(
        f"{args.src} ({args.source}) -> {args.dst}: {net.arch_config()}, "
        f"{net.normalization.channel_order} input, keypoints={net.keypoints}, codec {net.codec}"
    )


if __name__ == "__main__":
    main()
