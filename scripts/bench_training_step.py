"""Training-step images/s of a preset: batch-norm paths side by side, or the allocator settings compared.

    python scripts/bench_training_step.py --model rsn18 --input 192 256 --batch 16
    python scripts/bench_training_step.py --model rsn18 --input 192 256 --batch 16 --allocator
    python scripts/bench_training_step.py --parts

Without --allocator, one process times interleaved rounds of four copies of the network (same weights,
input and targets; float32; fused Adam as model.optimizer.fused; freed memory kept, as rsn-train runs):
``library`` (the library's BatchNorm2d, channels-last), ``rowwise`` (the same without its NCHW round trip
for small tensors), ``native`` (every batch norm on nn.BatchNorm2d's own channels-last kernel) and
``nchw`` (nn.BatchNorm2d in the plain layout). With --allocator, it runs the
default mode in fresh processes, alternately with glibc's malloc defaults (RSN_KEEP_FREED_MEMORY=0) and
with rsn_lightning.allocator's settings, and reports images/s, kernel (system) time, minor page faults and
peak resident memory of each: settings that act per process cannot be interleaved in one. --parts times
single calls instead: batch norm's backward (native NCHW, native channels-last, the row-wise path) on
RSN's channel counts, and one Adam step of --model with torch's default and fused implementations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _setup(model: str, batch: int, w: int, h: int, mode: str):
    """rsn-bench's training step (its loss, fused Adam, fixed batch) for ``mode``: library (the library's
    network), rowwise (its BatchNorm2d without the NCHW round trip for small tensors), native (every batch
    norm back on nn.BatchNorm2d's own kernel) or nchw."""
    import torch
    from torch import nn

    from rsn_lightning.bench.workloads import Workload
    from rsn_lightning.models import create_model
    from rsn_lightning.models.batchnorm import BatchNorm2d

    torch.manual_seed(0)
    net = create_model(model)
    for m in net.modules():
        if type(m) is BatchNorm2d and mode == "rowwise":
            m.round_trip_max_elements = 0
        elif type(m) is BatchNorm2d and mode != "library":
            m.__class__ = nn.BatchNorm2d
    workload = Workload(model, (w, h), batch, "nchw" if mode == "nchw" else "default", torch.device("cpu"),
                        channels_last=True, net=net)
    return workload.train_fn


def _rate(step, batch: int, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def batchnorm_paths(a) -> None:
    from rsn_lightning.allocator import keep_freed_memory

    keep_freed_memory()  # as rsn-train runs
    steps = {mode: _setup(a.model, a.batch, *a.input, mode) for mode in ("library", "rowwise", "native", "nchw")}
    for step in steps.values():
        step()
    rates = {mode: [] for mode in steps}
    for _ in range(a.rounds):
        for mode, step in steps.items():
            rates[mode].append(_rate(step, a.batch, a.steps))
    print(f"{a.model} {a.input[0]}x{a.input[1]} batch {a.batch}, training images/s per round (best):")
    for mode, r in rates.items():
        print(f"  {mode:8s} {' '.join(f'{v:6.1f}' for v in r)}   ({max(r):.1f})")


def one_process(a) -> None:
    from rsn_lightning.allocator import keep_freed_memory

    state = keep_freed_memory()
    step = _setup(a.model, a.batch, *a.input, "library")
    step()
    before = resource.getrusage(resource.RUSAGE_SELF)
    rate = max(_rate(step, a.batch, a.steps) for _ in range(a.rounds))
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"allocator": state, "images_per_s": rate, "system_s": after.ru_stime - before.ru_stime,
                      "minor_faults": after.ru_minflt - before.ru_minflt, "peak_rss_mib": after.ru_maxrss / 1024}))


def allocators(a) -> None:
    argv = [sys.executable, __file__, "--one-process", "--model", a.model, "--input", *map(str, a.input),
            "--batch", str(a.batch), "--steps", str(a.steps), "--rounds", str(a.rounds)]
    print(f"{a.model} {a.input[0]}x{a.input[1]} batch {a.batch}: {a.rounds} rounds of {a.steps} training steps "
          "per process (best round), processes alternating")
    for _ in range(a.processes):
        for keep in ("0", "1"):
            env = {**os.environ, "RSN_KEEP_FREED_MEMORY": keep}
            r = json.loads(subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout)
            print(f"  {r['allocator']:58s} {r['images_per_s']:6.1f} images/s, kernel {r['system_s']:5.1f} s, "
                  f"{r['minor_faults']:>9,} page faults, peak RSS {r['peak_rss_mib']:,.0f} MiB")


def _best_us(fn, repeats: int = 5, calls: int = 8) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls * 1e6)
    return best


def _batchnorm_backward_us(n: int, c: int, h: int, w: int) -> dict:
    import torch

    from rsn_lightning.models.batchnorm import _RowwiseBatchNorm

    cl = torch.channels_last
    x, g = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    weight, bias, rm, rv = torch.rand(c) + 0.5, torch.zeros(c), torch.zeros(c), torch.ones(c)
    _, mean, invstd = torch.ops.aten.native_batch_norm(x, weight, bias, rm, rv, True, 0.1, 1e-5)

    def native(xx, gg):
        return lambda: torch.ops.aten.native_batch_norm_backward(gg, xx, weight, rm, rv, mean, invstd, True, 1e-5,
                                                                 [True, True, True])

    times = {"NCHW": _best_us(native(x, g)),
             "channels-last": _best_us(native(x.contiguous(memory_format=cl), g.contiguous(memory_format=cl)))}
    xr = x.contiguous(memory_format=cl).requires_grad_()
    wr, br = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    y = _RowwiseBatchNorm.apply(xr, wr, br, 1e-5)[0]
    gr = g.contiguous(memory_format=cl)
    times["row-wise"] = _best_us(lambda: torch.autograd.grad(y, (xr, wr, br), gr, retain_graph=True))
    return times


def parts(a) -> None:
    import torch

    from rsn_lightning.models import create_model

    print("batch norm backward, training statistics, float32, best of 5 (microseconds per call):")
    for n, c, h, w in ((16, 13, 64, 48), (32, 13, 32, 24), (32, 26, 32, 24), (16, 52, 32, 24), (32, 64, 32, 24)):
        times = _batchnorm_backward_us(n, c, h, w)
        print(f"  C={c:3d} {n}x{h}x{w}: " + ", ".join(f"{k} {v:,.0f}" for k, v in times.items()))
    net = create_model(a.model)
    for p_ in net.parameters():
        p_.grad = torch.randn_like(p_)
    times = {}
    for name, kwargs in (("default", {}), ("fused", {"fused": True})):
        opt = torch.optim.Adam(net.parameters(), 1e-4, **kwargs)
        times[name] = _best_us(opt.step) / 1000
    print(f"Adam step, {a.model} ({sum(p_.numel() for p_ in net.parameters()) / 1e6:.2f} M parameters): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in times.items()))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rsn18")
    p.add_argument("--input", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--allocator", action="store_true", help="compare glibc's defaults with the library's settings")
    p.add_argument("--processes", type=int, default=2, help="--allocator: processes of each kind")
    p.add_argument("--parts", action="store_true", help="time batch norm's backward and the Adam step alone")
    p.add_argument("--one-process", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one_process:
        one_process(a)
    elif a.parts:
        parts(a)
    elif a.allocator:
        allocators(a)
    else:
        batchnorm_paths(a)


if __name__ == "__main__":
    main()
