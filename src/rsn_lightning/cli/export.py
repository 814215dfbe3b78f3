"""rsn-export: a checkpoint -> ONNX, checked against PyTorch with onnxruntime (``inference.export``)."""

from __future__ import annotations

import argparse
import sys

from rsn_lightning.errors import BadInputError
from rsn_lightning.inference.export import export_onnx, verify_onnx


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rsn-export", description="Export an RSN checkpoint to ONNX.")
    p.add_argument("checkpoint", help="this project's .ckpt or an rsn-convert output")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("W", "H"), default=None,
                   help="network input width and height (default: the checkpoint's codec's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="largest allowed |onnx - torch| as a fraction of the largest |heatmap| value (default 1e-4)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from rsn_lightning import load_model

    try:
        net = load_model(args.checkpoint)
        size = args.input_size or net.codec.input_size
        path = export_onnx(net, args.output, size, opset=args.opset, dynamic_batch=not args.static_batch)
    except BadInputError as err:  # an unusable checkpoint, an input size its codec cannot decode
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} (input [N, 3, {size[1]}, {size[0]}])")
    if not args.no_verify:
        diff, scale = verify_onnx(path, net, size, batch_sizes=(1,) if args.static_batch else (1, 2))
        relative = diff / scale if scale > 0 else diff
        print(f"onnxruntime vs PyTorch: max |diff| = {diff:.3g} ({relative:.2g} of the largest |heatmap| "
              f"value {scale:.4g})")
        if relative > args.rtol:
            print(f"error: {path} differs from PyTorch by {relative:.2g} of the heatmap scale, above --rtol "
                  f"{args.rtol}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
