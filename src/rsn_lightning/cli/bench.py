"""rsn-bench: training and inference throughput of a model preset (images/s), on CPU or GPU.

Set it beside the data pipeline's per-worker rate (scripts/bench_data.py) to see how many loader
processes keep one device fed:  workers ~= train images/s / samples/s per worker.

    rsn-bench --model rsn18 --input 192 256 --batch 32
"""

from __future__ import annotations

import argparse
import time


def measure(model: str = "rsn18", input_size=(192, 256), batch: int = 32, steps: int = 10, warmup: int = 2,
            device: str = "auto", channels_last: bool = False, amp: bool = False) -> dict:
    import torch

    from rsn_lightning.models.registry import create_model
    from rsn_lightning.training.loss import RSNLoss

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    net = create_model(model).to(dev)
    w, h = input_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(batch, 3, h, w, device=dev).contiguous(memory_format=fmt)
    k = net.num_keypoints
    targets = torch.rand(batch, 5, k, h // 4, w // 4, device=dev) * 255
    vis = torch.full((batch, k), 2.0, device=dev)
    crit = RSNLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16 if dev.type == "cpu" else torch.float16,
                              enabled=amp)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        with autocast:
            loss, _ = crit(net.forward_all(x), targets, vis)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad(), autocast:
            net(x)

    out = {"model": model, "device": str(dev), "batch": batch, "input": f"{w}x{h}"}
    for name, fn, mode in (("train_images_per_s", train_step, True), ("infer_images_per_s", infer_step, False)):
        net.train(mode)
        for _ in range(warmup):
            fn()
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        out[name] = batch * steps / (time.perf_counter() - t)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rsn18", help="a preset name (see rsn_lightning.models.list_models())")
    p.add_argument("--input", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--amp", action="store_true", help="autocast (fp16 on GPU, bf16 on CPU)")
    a = p.parse_args(argv)
    r = measure(a.model, tuple(a.input), a.batch, a.steps, device=a.device, channels_last=a.channels_last,
                amp=a.amp)
    print(f"{r['model']} {r['input']} batch {r['batch']} on {r['device']}: "
          f"train {r['train_images_per_s']:.1f} images/s, inference {r['infer_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
