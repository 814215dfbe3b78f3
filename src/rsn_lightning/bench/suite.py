"""The whole benchmark in one call: the machine's information and ceiling, then each workload asked for."""

from __future__ import annotations

import os

from rsn_lightning.bench.data import bench_data
from rsn_lightning.bench.evals import bench_eval
from rsn_lightning.bench.measure import gemm_ceiling, torch_device
from rsn_lightning.bench.workloads import DEFAULT_MODES, bench_models


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or ``unknown`` where the system has none."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run(models, input_sizes, batch: int = 16, modes=DEFAULT_MODES, steps: int = 3, warmup: int = 2,
        rounds: int = 2, device: str = "auto", channels_last: bool = True, memory: bool = True,
        gemm_size: int = 2048, eval_images: int = 0, dets_per_image: int = 20, data_seconds: float = 0.0,
        data_root=None, data_ann: str = "annotations.json", progress=print) -> tuple[list[dict], dict]:
    """The entries of every (preset, input size, mode), then of the COCO evaluation (``eval_images`` > 0)
    and the data pipeline (``data_seconds`` > 0, at the first input size), and the machine's information
    (device, threads, torch, native bf16, load average, allocator, GEMM ceiling at the start)."""
    import torch

    from rsn_lightning.allocator import keep_freed_memory
    from rsn_lightning.training.precision import native_bf16

    allocator = keep_freed_memory(device)  # as rsn-train, rsn-eval and rsn-predict run
    dev = torch_device(device)
    info = {"device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "native_bf16": native_bf16(dev.type),
            "load_average": load_average(), "gemm_n": gemm_size, "allocator": allocator}
    progress(f"rsn-bench: float32 GEMM ceiling ({gemm_size}^3)")
    info["gemm_gflops"] = gemm_ceiling(str(dev), n=gemm_size)
    progress(f"  {info['gemm_gflops']:.1f} GFLOP/s")
    entries = bench_models(models, input_sizes, batch=batch, modes=modes, steps=steps, warmup=warmup,
                           rounds=rounds, device=device, channels_last=channels_last, memory=memory,
                           gemm_size=gemm_size, progress=progress)
    if eval_images > 0:
        entries += bench_eval(eval_images, dets_per_image, progress=progress)
    if data_seconds > 0:
        progress("  data pipeline")
        entries.append(bench_data(data_root, data_ann, tuple(input_sizes[0]), data_seconds, progress=progress))
    return entries, info
