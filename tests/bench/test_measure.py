"""The GEMM ceiling and the peak memory of a call, on real values."""

from __future__ import annotations

import pytest
import torch

from rsn_lightning.bench.measure import gemm_ceiling, peak_memory_mb


def test_peak_memory_counts_live_tensors():
    def two_live_then_one():
        a = torch.ones(1024, 1024, 25)  # 100 MiB
        b = a * 2  # 200 MiB live
        del a
        c = b + 1  # still 200 MiB live
        return c.sum()

    assert peak_memory_mb(two_live_then_one, torch.device("cpu")) == pytest.approx(200, rel=0.01)


def test_gemm_ceiling_is_a_rate():
    assert gemm_ceiling("cpu", n=256, repeats=2) > 0.1  # GFLOP/s: any CPU of this century does more
