"""Print parameters and GFLOPs (multiply-adds) of every RSN preset next to the paper's numbers.

python scripts/count_flops.py                # markdown table, 256x192 and 384x288
python scripts/count_flops.py --models rsn18 --sizes 192x256
python scripts/count_flops.py --models rsn18 --sizes 192x256 --prm last_unit last_stage none   # PRM ablation
python scripts/count_flops.py --models 4xrsn50 --sizes 256x256 --num-keypoints 16              # MPII
"""

from __future__ import annotations

import argparse

from rsn_lightning.models.flops import complexity
from rsn_lightning.models.registry import create_model, list_models
from rsn_lightning.models.rsn import PRM_PLACEMENTS

# Cai et al. 2020, Tables 1, 5 and 6 (COCO, GFLOPs as multiply-adds); keyed by (model, width, height)
PAPER_GFLOPS = {
    ("rsn18", 192, 256): 2.5,
    ("rsn50", 192, 256): 6.4,
    ("rsn101", 192, 256): 11.5,
    ("2xrsn50", 192, 256): 13.9,
    ("3xrsn50", 192, 256): 20.7,
    ("4xrsn50", 192, 256): 29.3,
    ("4xrsn50", 288, 384): 65.9,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list_models())
    parser.add_argument("--sizes", nargs="*", default=["192x256", "288x384"], help="WIDTHxHEIGHT")
    parser.add_argument("--prm", nargs="*", default=["last_unit"], choices=PRM_PLACEMENTS,
                        help="PRM placements to count (model.net.prm)")
    parser.add_argument("--num-keypoints", type=int, default=17, help="17 COCO, 16 MPII")
    args = parser.parse_args(argv)
    print("| model | prm | input (HxW) | params (M) | GFLOPs (ours) | GFLOPs (paper) |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models:
        for prm in args.prm:
            net = create_model(name, prm=prm, num_keypoints=args.num_keypoints)
            for size in args.sizes:
                w, h = (int(v) for v in size.lower().split("x"))
                c = complexity(net, (w, h))
                paper = PAPER_GFLOPS.get((name, w, h)) if args.num_keypoints == 17 else None
                print(
                    f"| {name} | {prm} | {h}x{w} | {c['mparams']:.3f} | {c['gmacs']:.3f} | "
                    f"{'' if paper is None else paper} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
