"""The authors' RSN-18 against rsn_lightning's, interleaved in one process on the same batch.

Their network and loss are imported from a checkout of caiyuanhao1998/RSN that you provide (nothing of
it is copied into this project) and run as their training script runs them: NCHW float32, the loss
computed inside their forward. Ours runs in the library's defaults: training in channels-last with
``RSNLoss``, inference with ``models.fuse.inference_network`` (BN folded, channels-last), the network
rsn-predict and rsn-eval run. Both get the same random weights' shapes, batch and targets; rounds
alternate between the two so that load from other processes weighs on them alike, and the ratio of
each round is printed (ratios carry from a loaded machine, absolute rates do not). Ours steps with the
library's default optimizer (fused Adam, ``model.optimizer.fused``), theirs with torch.optim.Adam as their
solver builds it. Both run under the allocator settings the library's console scripts apply
(``rsn_lightning.allocator``: freed memory kept in the process), which speed their code too; ``--allocator
glibc`` leaves glibc's defaults, as their own scripts run.

    git clone https://github.com/caiyuanhao1998/RSN /tmp/RSN
    python scripts/compare_authors.py --authors-repo /tmp/RSN --batch 16 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace as NS

import torch


def load_authors_rsn(repo: Path, experiment: str = "RSN18.coco"):
    """The authors' ``RSN`` class from ``repo/exps/<experiment>/network.py``, with the ``lib.utils.loss``
    it imports loaded from ``repo/lib/utils/loss.py`` alone (the rest of their ``lib`` needs their data
    tools)."""
    files = {"network": repo / "exps" / experiment / "network.py", "loss": repo / "lib" / "utils" / "loss.py"}
    for name, path in files.items():
        if not path.is_file():
            raise SystemExit(f"compare_authors: {path} not found: --authors-repo must be a checkout of "
                             f"caiyuanhao1998/RSN (its {name} file)")
    for pkg in ("lib", "lib.utils"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    for name, path in (("lib.utils.loss", files["loss"]), ("authors_network", files["network"])):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["authors_network"].RSN


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", type=Path, required=True, help="a checkout of caiyuanhao1998/RSN")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="steps per timed round")
    p.add_argument("--json", type=Path, default=None, help="write the rounds' rates and ratios here")
    p.add_argument("--allocator", choices=("library", "glibc"), default="library",
                   help="library: freed memory kept, as rsn-train runs (both networks); glibc: its defaults")
    args = p.parse_args(argv)

    from rsn_lightning.allocator import keep_freed_memory

    allocator = keep_freed_memory() if args.allocator == "library" else "glibc defaults"

    from rsn_lightning.models import create_model
    from rsn_lightning.models.fuse import inference_network
    from rsn_lightning.training.loss import RSNLoss

    authors_rsn = load_authors_rsn(args.authors_repo)
    torch.manual_seed(0)
    b, h, w = args.batch, 256, 192
    cfg = NS(MODEL=NS(STAGE_NUM=1, UPSAMPLE_CHANNEL_NUM=256), DATASET=NS(KEYPOINT=NS(NUM=17)),
             OUTPUT_SHAPE=(h // 4, w // 4), LOSS=NS(OHKM=True, TOPK=8, COARSE_TO_FINE=True))  # their RSN18 config
    theirs = authors_rsn(cfg)
    ours = create_model("rsn18").to(memory_format=torch.channels_last)
    ours_infer = inference_network(ours)  # taken before training: both infer with untrained weights
    theirs_infer = theirs.eval()
    x = torch.randn(b, 3, h, w)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    labels = torch.rand(b, 5, 17, h // 4, w // 4) * 255
    valids = torch.full((b, 17, 1), 2.0)
    criterion = RSNLoss()
    opt_theirs = torch.optim.Adam(theirs.parameters(), 1e-4)
    opt_ours = torch.optim.Adam(ours.parameters(), 1e-4, fused=True)  # model.optimizer.fused: the default

    def theirs_train():
        theirs.train()
        loss = theirs(x, valids, labels)["total_loss"]
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()

    def ours_train():
        ours.train()
        loss, _ = criterion(ours.forward_all(x_cl), labels, valids[..., 0])
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()

    def theirs_inference():
        theirs_infer.eval()
        with torch.no_grad():
            theirs_infer(x)

    def ours_inference():
        with torch.no_grad():
            ours_infer(x_cl)

    params = {"authors": sum(q.numel() for q in theirs.parameters()) / 1e6,
              "ours": sum(q.numel() for q in ours.parameters()) / 1e6}
    print(f"parameters (M): authors {params['authors']:.2f}, ours {params['ours']:.2f}; batch {b}, {w}x{h}, "
          f"{torch.get_num_threads()} threads, memory allocator: {allocator}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    report = {"batch": b, "params_m": params, "allocator": allocator, "rounds": []}
    # inference first: the authors' training leaves their BN statistics, not their weights' speed, changed
    for kind, fns in (("inference", (("authors", theirs_inference), ("ours", ours_inference))),
                      ("training", (("authors", theirs_train), ("ours", ours_train)))):
        for _, f in fns:
            f()
            f()
        ratios = []
        for r in range(args.rounds):
            rates = {}
            for name, f in fns:
                t = time.perf_counter()
                for _ in range(args.steps):
                    f()
                rates[name] = b * args.steps / (time.perf_counter() - t)
            ratios.append(rates["ours"] / rates["authors"])
            report["rounds"].append({"kind": kind, "round": r + 1, "load_average": os.getloadavg()[0], **rates,
                                     "ratio": ratios[-1]})
            print(f"{kind} round {r + 1}: authors {rates['authors']:.2f}, ours {rates['ours']:.2f} images/s, "
                  f"ours/authors {ratios[-1]:.2f}x (load average {os.getloadavg()[0]:.2f})", flush=True)
        print(f"{kind}: median ratio ours/authors {statistics.median(ratios):.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
