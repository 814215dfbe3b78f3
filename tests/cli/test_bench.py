"""rsn-bench through its console script, and the training-memory estimate it prints."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsn_lightning.models import count_macs, create_model
from rsn_lightning.models.memory import estimate_training_memory

RSN_BENCH = str(Path(sys.executable).with_name("rsn-bench"))
REQUIRED = ("model", "input", "mode", "batch", "train_images_per_s", "infer_images_per_s", "gmac_per_image",
            "gemm_gflops", "infer_utilisation", "train_utilisation")


def test_rsn_bench_writes_json_and_markdown(tmp_path):
    cmd = [RSN_BENCH, "--model", "rsn_tiny", "--input", "64", "64", "--batch", "2", "--steps", "1", "--rounds", "1",
           "--warmup", "1", "--modes", "default", "plain", "nchw", "onnxruntime", "checkpoint",
           "--eval-images", "30", "--data-seconds", "0.5", "--gemm-size", "256",
           "--json", "out/bench.json", "--markdown", "out/bench.md"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = json.loads((tmp_path / "out/bench.json").read_text())
    models = {e["mode"]: e for e in entries if e["model"] is not None}
    assert set(models) == {"default", "plain", "nchw", "onnxruntime", "checkpoint"}
    gmac = count_macs(create_model("rsn_tiny"), (64, 64)) / 1e9
    for mode, e in models.items():
        assert set(REQUIRED) <= set(e), mode
        assert e["model"] == "rsn_tiny" and e["input"] == "64x64" and e["batch"] == 2
        assert e["gmac_per_image"] == pytest.approx(gmac, rel=1e-3)
        assert e["gemm_gflops"] > 0
    for mode in ("default", "plain", "nchw", "onnxruntime"):
        e = models[mode]
        assert e["infer_images_per_s"] > 0
        # utilisation = model FLOP/s (2 FLOPs per multiply-add) over the measured GEMM ceiling
        assert e["infer_utilisation"] == pytest.approx(
            e["infer_images_per_s"] * 2 * e["gmac_per_image"] / e["infer_gemm_gflops"], rel=0.02, abs=2e-3)
    for mode in ("default", "nchw", "checkpoint"):
        assert models[mode]["train_images_per_s"] > 0 and models[mode]["train_peak_mb"] > 0
    assert models["plain"]["train_images_per_s"] is None and models["checkpoint"]["infer_images_per_s"] is None
    # activation checkpointing stores less for backward
    assert models["checkpoint"]["train_peak_mb"] < models["default"]["train_peak_mb"]
    data = next(e for e in entries if e["mode"] == "data")
    assert data["decode_images_per_s"] > 0 and data["samples_per_s_per_worker"] > 0
    evals = [e for e in entries if e["mode"].startswith("coco-eval")]
    assert evals[0]["mode"] == "coco-eval:pycocotools" and evals[0]["num_detections"] == 600
    md = (tmp_path / "out/bench.md").read_text()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        # rsn-bench measures with the allocator settings rsn-train runs with (allocator.py): freed memory
        # kept where it computes on the CPU (--device auto: here, without a GPU), glibc's defaults on a GPU
        kept = not torch.cuda.is_available()
        assert entries[0]["machine"]["allocator"].startswith("glibc: freed memory kept") is kept
        assert ("memory allocator: glibc: freed memory kept" in md) is kept
    assert "GEMM ceiling" in md and "| rsn_tiny | 64x64 | plain |" in md and "loader worker" in md


def _hook_measured_saved_bytes(net, x) -> int:
    """The saved-for-backward bytes of a real forward, counted independently of memory.py: distinct buffers
    by data pointer, parameters left out."""
    params = {p.data_ptr() for p in net.parameters()}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    del out
    return sum(saved.values())


def test_memory_estimate_on_meta_equals_a_real_forward():
    # NCHW: on CPU with channels-last, the row-wise batch norm (models/batchnorm.py) saves its own tensors;
    # the meta device (and CUDA) run nn.BatchNorm2d, which a CPU forward also runs in NCHW
    est = estimate_training_memory("rsn_tiny", (64, 96), batch=2, channels_last=False)
    net = create_model("rsn_tiny").train()
    measured = _hook_measured_saved_bytes(net, torch.randn(2, 3, 96, 64))
    assert est.activation_bytes == measured
    assert est.weight_bytes == 4 * sum(p.numel() for p in net.parameters())  # float32
    assert est.total_bytes == 4 * est.weight_bytes + est.activation_bytes  # weights, grads, Adam's 2 moments


def test_memory_estimate_scales_with_batch_and_input_area():
    base = estimate_training_memory("rsn_tiny", (64, 64), batch=2).activation_bytes
    # what does not scale (batch-norm statistics, the PRM's pooled vectors) is well under 1% at these sizes
    assert estimate_training_memory("rsn_tiny", (64, 64), batch=6).activation_bytes == pytest.approx(3 * base, rel=0.01)
    assert estimate_training_memory("rsn_tiny", (128, 128), batch=2).activation_bytes == pytest.approx(
        4 * base, rel=0.02)


def test_memory_estimate_of_the_largest_preset_through_rsn_bench(tmp_path):
    proc = subprocess.run([RSN_BENCH, "--memory-estimate", "--experiments", "coco_4xrsn50_384x288", "quickstart"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in proc.stdout.splitlines() if line.startswith("| coco") or line.startswith("| quickstart")}
    big = rows["coco_4xrsn50_384x288"]
    assert big[1:4] == ["4xrsn50", "384x288", "32"]
    activations, total = float(big[5]), float(big[6])
    # measured 33.37 GiB saved + 1.18 GiB weights/grads/Adam (docs/performance.md): more than a 32 GB V100,
    # under a 40 GiB A100 with only ~5 GiB left for the CUDA context and backward's transient buffers
    assert 30 < activations < total < 37
    assert big[7:] == ["yes", "yes"]
    assert rows["quickstart"][1:4] == ["rsn_tiny", "128x96", "32"] and float(rows["quickstart"][6]) < 1
    bad = subprocess.run([RSN_BENCH, "--memory-estimate", "--experiments", "nope"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": str(Path(sys.executable).parent)})
    assert bad.returncode != 0 and "unknown experiment" in bad.stderr and "quickstart" in bad.stderr
