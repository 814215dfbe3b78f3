"""The machine's float32 GEMM ceiling and the peak memory of a call: what every workload is read against."""

from __future__ import annotations

import math
import time


def torch_device(device: str):
    """``device`` as a torch.device; ``auto``: cuda when torch sees a GPU, else cpu."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def synchronize(dev) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def gemm_ceiling(device: str = "auto", n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate (GFLOP/s): the best of ``repeats`` n x n products."""
    import torch

    dev = torch_device(device)
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    out = torch.empty(n, n, device=dev)
    torch.mm(a, b, out=out)  # warm-up (thread pool, caches)
    synchronize(dev)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def peak_memory_mb(fn, dev) -> float:
    """Peak memory allocated by tensors while ``fn()`` runs, above what was allocated before (MiB).

    CUDA: the caching allocator's peak. CPU: tracemalloc does not see torch's allocator, so the
    allocations and frees the profiler records are replayed in time order and their running sum's
    maximum is taken.
    """
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(dev) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # an operator's own allocations are attributed to it (self memory); frees outside any operator are
    # "[memory]" events with negative sizes
    deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    running = peak = 0
    for _, delta in deltas:
        running += delta
        peak = max(peak, running)
    return peak / 2**20
