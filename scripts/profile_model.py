"""Where a preset's time goes: torch.profiler's operator table for one inference pass and one training step.

    python scripts/profile_model.py --model rsn18 --input 192 256 --batch 8 [--nchw]

Float32, the library's default layout (channels-last) unless --nchw; one untimed pass first.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from rsn_lightning.models.registry import create_model
from rsn_lightning.training.loss import RSNLoss


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rsn18")
    p.add_argument("--input", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--nchw", action="store_true", help="the plain layout instead of channels-last")
    p.add_argument("--rows", type=int, default=10)
    a = p.parse_args(argv)
    layout = torch.contiguous_format if a.nchw else torch.channels_last
    (w, h), b = a.input, a.batch
    net = create_model(a.model).to(memory_format=layout)
    x = torch.randn(b, 3, h, w).contiguous(memory_format=layout)
    k = net.num_keypoints
    targets, visible, criterion = torch.rand(b, 5, k, h // 4, w // 4) * 255, torch.full((b, k), 2.0), RSNLoss()

    def infer():
        with torch.no_grad():
            net.eval()(x)

    def train():
        loss, _ = criterion(net.train().forward_all(x), targets, visible)
        loss.backward()

    for name, fn in (("inference", infer), ("training step", train)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f"=== {a.model} {w}x{h} batch {b} {'NCHW' if a.nchw else 'channels-last'}: {name}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
