"""rsn-bench through its console script, and its measuring parts on real values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsn_lightning.cli.bench import _compile_break_even, _Workload, bench_eval, gemm_ceiling, peak_memory_mb
from rsn_lightning.models import count_macs, create_model
from rsn_lightning.models.fuse import count_batchnorms
from rsn_lightning.training.precision import native_bf16

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
    assert "GEMM ceiling" in md and "| rsn_tiny | 64x64 | plain |" in md and "loader worker" in md


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


def test_faster_coco_eval_gives_pycocotools_stats():
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval not installed (pip install '.[fast-eval]')")
    py, fast = bench_eval(num_images=300, dets_per_image=10, progress=lambda *_: None)
    assert py["num_detections"] == fast["num_detections"] == 3000
    assert 0.05 < py["AP"] < 0.95
    assert fast["max_stat_difference"] == 0.0


def _trained_looking_tiny():
    """rsn_tiny with random BN affine terms and BN statistics calibrated on random images (as after
    training), so that folding BN into the convolutions has something to fold."""
    gen = torch.Generator().manual_seed(1)
    net = create_model("rsn_tiny")
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(4, 3, 64, 64, generator=gen))
    return net.eval()


def _mode_against_plain(mode: str, net=None):
    net = _trained_looking_tiny() if net is None else net
    wl = _Workload("rsn_tiny", (64, 64), 2, mode, torch.device("cpu"), channels_last=True, net=net)
    if wl.skipped:
        pytest.skip(wl.skipped)
    return wl, wl.infer_output(), wl.reference_output()


# every float32 mode differs from the plain float32 eval forward (NCHW, BN unfolded) by rounding only:
# measured at most 1.9e-6 of the largest value on rsn_tiny (BN folding, oneDNN's channels-last kernels,
# ONNX Runtime's fused kernels, inductor); 5e-4 is the bound tests/models/test_fuse.py uses for folding
FLOAT32_TOLERANCE = 5e-4


@pytest.mark.parametrize("mode", ["default", "plain", "nchw", "onnxruntime"])
def test_every_inference_mode_gives_the_plain_float32_forward(mode):
    if mode == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[export]')")
    wl, out, ref = _mode_against_plain(mode)
    if mode == "default":  # the library's inference network: BN folded, channels-last
        assert count_batchnorms(wl.forward) == 0 and count_batchnorms(wl.plain) > 50
    assert out.shape == ref.shape == (2, 17, 16, 16)
    assert (out - ref).abs().max() <= FLOAT32_TOLERANCE * ref.abs().max()


@pytest.mark.slow  # inductor compiles the network to C++ first: 88 s for rsn_tiny on the loaded 2-core machine
def test_compiled_inference_gives_the_plain_float32_forward():
    wl, out, ref = _mode_against_plain("compile")
    assert (out - ref).abs().max() <= FLOAT32_TOLERANCE * ref.abs().max()
    assert wl.compile_seconds["infer"] > 0


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bf16 (rsn-bench skips amp there)")
def test_amp_inference_matches_float32_loosely():
    torch.manual_seed(0)
    # BN at identity: calibrated random BN statistics amplify bf16's rounding chaotically (11% measured)
    _, out, ref = _mode_against_plain("amp", net=create_model("rsn_tiny").eval())
    # bf16 keeps 8 bits of mantissa and errors add up over the layers: relative error norm 0.8-1.6% over
    # init seeds 0-3 (largest single value 1.4-2.7% of the largest output)
    assert (out - ref).norm() <= 0.05 * ref.norm()


def test_compile_break_even_counts_the_images_that_pay_for_compiling():
    entries = [{"model": "m", "input": "64x64", "mode": "default", "batch": 2, "train_images_per_s": 1.0,
                "infer_images_per_s": 4.0},
               {"model": "m", "input": "64x64", "mode": "compile", "batch": 2, "train_images_per_s": 2.0,
                "infer_images_per_s": 4.0, "train_first_call_s": 10.0, "infer_first_call_s": 3.0}]
    lines = "\n".join(_compile_break_even(entries))
    # training: the first call (10 s) replaces one 2-image step of 2 s, so compiling costs 8 s more and saves
    # 1/1 - 1/2 = 0.5 s per image: it has paid after 16 images; inference is not faster: it never pays
    assert "training: first call 10.0 s (compiling), then 2.0 against 1.0 images/s: pays after 16 images" in lines
    assert "inference: first call 3.0 s (compiling), then 4.0 against 4.0 images/s: never pays" in lines
