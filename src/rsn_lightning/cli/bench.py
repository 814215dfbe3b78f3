"""rsn-bench: the whole workload's speed, measured against this machine's float32 GEMM ceiling.

For each preset and input size, and each mode (the library's default, whose inference is the network
rsn-predict and rsn-eval run: BN folded into the convolutions, channels-last; the unfolded forward;
torch.compile, with its first call's time; ONNX Runtime; mixed precision where the device computes it
natively; activation checkpointing; the plain NCHW layout): parameters, multiply-adds counted by
``torch.utils.flop_counter``, training-step and inference images/s, peak memory, and utilisation =
the model's FLOP/s over the float32 GEMM rate measured in the same run (a large matrix product; the
figure that carries from one machine to another). Training counts 3x the forward's FLOPs. Modes are
timed in interleaved rounds, so load from other processes affects them alike, and each rate is the
best round's.

Optionally also the evaluation time of a COCO-scale keypoint results file (generated: 5,000 images,
100,000 detections) with pycocotools and faster-coco-eval, and the data pipeline's samples/s per
loader worker beside JPEG decode alone, with the workers needed to feed the measured training rate.

    rsn-bench --model rsn18 rsn50 --input 192 256 --batch 16 --json bench.json --markdown bench.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsn_lightning.bench.report import json_text, markdown
from rsn_lightning.bench.suite import run
from rsn_lightning.bench.workloads import DEFAULT_MODES, MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["rsn18"], help="preset names (rsn_lightning.models.list_models())")
    p.add_argument("--input", type=int, nargs="+", default=[192, 256], metavar="W H",
                   help="input width and height; several sizes as W H W H ...")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES,
                   help="default: the library's settings (training in channels-last float32; inference with "
                        "BN folded into the convolutions, channels-last, as rsn-predict/rsn-eval run it); "
                        "plain: the unfolded channels-last eval forward (inference); nchw: the plain layout; "
                        "compile: torch.compile of the default (first call's time reported); "
                        "onnxruntime: exported and run by ONNX Runtime (inference, CPU); amp: bf16/fp16 "
                        "autocast where native, skipped elsewhere; checkpoint: activation checkpointing (training)")
    p.add_argument("--amp", action="store_true", help="add the amp mode (skipped with a warning where emulated)")
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (oneDNN builds its kernels)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; rates are the best round's")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-channels-last", action="store_true", help="run the default mode in NCHW")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--eval-images", type=int, default=0,
                   help="time COCO evaluation of a generated results file over this many images (5000: COCO val)")
    p.add_argument("--dets-per-image", type=int, default=20)
    p.add_argument("--data-seconds", type=float, default=0.0, help="time the data pipeline for this long (0: skip)")
    p.add_argument("--data-root", default=None, help="COCO-format folder for the data benchmark (default: synthetic)")
    p.add_argument("--data-ann", default="annotations.json", help="annotation file under --data-root")
    p.add_argument("--json", default=None, metavar="PATH", help="write the entries as a JSON list")
    p.add_argument("--markdown", default=None, metavar="PATH", help="write the tables as markdown (else printed)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--memory-estimate", action="store_true",
                   help="print the float32 training-memory estimate of every conf/experiment preset at its per-GPU "
                        "batch (saved activations + weights + grads + Adam, on the meta device) and exit")
    p.add_argument("--experiments", nargs="+", default=None, metavar="NAME",
                   help="with --memory-estimate: only these conf/experiment presets (default: all)")
    return p


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.memory_estimate:
        from rsn_lightning.cli.common import config_dir
        from rsn_lightning.models.memory import memory_markdown, memory_table

        try:
            rows = memory_table(config_dir(), experiments=args.experiments)
        except ValueError as err:
            raise SystemExit(f"rsn-bench --experiments: {err}") from None
        text = memory_markdown(rows)
        if args.markdown:
            _write(args.markdown, text)
        print(text, end="")
        return
    if len(args.input) % 2:
        raise SystemExit(f"rsn-bench: --input takes width height pairs, got {args.input}")
    modes = list(args.modes)
    if args.amp and "amp" not in modes:
        modes.append("amp")
    sizes = [tuple(args.input[i:i + 2]) for i in range(0, len(args.input), 2)]
    entries, info = run(args.model, sizes, batch=args.batch, modes=modes, steps=args.steps, warmup=args.warmup,
                        rounds=args.rounds, device=args.device, channels_last=not args.no_channels_last,
                        memory=not args.no_memory, gemm_size=args.gemm_size, eval_images=args.eval_images,
                        dets_per_image=args.dets_per_image, data_seconds=args.data_seconds,
                        data_root=args.data_root, data_ann=args.data_ann,
                        progress=print if not args.quiet else (lambda *a, **k: None))
    text = markdown(entries, info)
    if args.json:
        _write(args.json, json_text(entries, info))
    if args.markdown:
        _write(args.markdown, text)
    print(text, end="")


if __name__ == "__main__":
    main()
