"""Lightning training, the Predictor, rsn-bench and rsn-export on one CUDA GPU, each checked against the
CPU or against what a GPU run must report."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from module_settings import lit_module
from test_module import make_datamodule, make_trainer, tiny_net

from rsn_lightning.inference.predictor import Predictor
from rsn_lightning.models.checkpoint import save_checkpoint
from rsn_lightning.normalization import InputNormalization

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_lightning_fit_and_validate_on_cuda(precision, synthetic_root, tmp_path):
    pl_seed = 0
    torch.manual_seed(pl_seed)
    dm = make_datamodule(synthetic_root, batch_size=4)
    module = lit_module(tiny_net(), dm, optimizer={"lr": 1e-3, "scale_lr": False},
                        scheduler={"name": "constant", "warmup_steps": 0}, output_dir=str(tmp_path))
    module.net = module.net.to(memory_format=torch.channels_last)
    trainer = make_trainer(tmp_path, accelerator="gpu", devices=1, precision=precision, max_epochs=2,
                           limit_train_batches=3, limit_val_batches=2)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 6
    assert next(module.parameters()).device.type == "cuda"
    train_loss = float(trainer.callback_metrics["train/loss"])
    assert math.isfinite(train_loss) and train_loss > 0
    (metrics,) = trainer.validate(module, datamodule=make_datamodule(synthetic_root, batch_size=4), verbose=False)
    # a real COCO evaluation ran on the validation predictions (AP in [0, 1], finite loss)
    assert 0.0 <= metrics["val/AP"] <= 1.0 and math.isfinite(metrics["val/loss"])


def _predictor_net():
    torch.manual_seed(0)
    net = tiny_net(output_gain=1.0).eval()
    net.normalization = InputNormalization()
    net.keypoints = "coco"
    return net


def test_predictor_on_cuda_equals_cpu_on_coco_photos(coco_mini_dir):
    dets = json.loads((coco_mini_dir / "test_coco_det_AP_H_56.json").read_text())
    net = _predictor_net()
    on = {d: Predictor(copy.deepcopy(net), device=d, batch_size=8) for d in ("cpu", "cuda")}
    compared = 0
    for image_path in sorted(coco_mini_dir.glob("*.jpg")):
        image_id = int(image_path.stem)
        boxes = np.array([d["bbox"] for d in dets if d["image_id"] == image_id and d["score"] > 0.3]).reshape(-1, 4)
        if not len(boxes):
            continue
        image = cv2.imread(str(image_path))
        cpu, gpu = (on[d].predict_image(image, boxes, image_id=image_id) for d in ("cpu", "cuda"))
        assert len(cpu) == len(gpu) == len(boxes)
        # the same crops (warped on the host) through a float32 network on each device: the heatmaps agree to
        # ~1e-5 relative (the float32 test), so a decoded joint moves only where its peak or the quarter-cell
        # shift's two neighbours tie within that, which random weights make rare: 95% of the joints within
        # 0.01 px (any layout or normalisation bug moves nearly all of them by pixels), scores to 1e-3
        moved = np.abs(cpu.keypoints - gpu.keypoints).max(-1)
        assert (moved < 1e-2).mean() >= 0.95, moved
        np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-3, rtol=1e-3)
        compared += len(boxes)
    assert compared > 0


def _run(cmd, cwd, timeout=600):
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_rsn_bench_on_cuda_reports_peak_gpu_memory(tmp_path):
    _run(["rsn-bench", "--device", "cuda", "--model", "rsn18", "--input", "192", "256", "--batch", "8",
          "--modes", "default", "amp", "--steps", "2", "--rounds", "1", "--warmup", "1", "--json", "bench.json"],
         tmp_path)
    entries = json.loads((tmp_path / "bench.json").read_text())
    assert entries[0]["machine"]["device"] == torch.cuda.get_device_name(0)
    default = next(e for e in entries if e["mode"] == "default")
    assert default["train_images_per_s"] > 0 and default["infer_images_per_s"] > 0
    # torch.cuda.max_memory_allocated above what was allocated before the step: at least the saved activations,
    # which memory.py estimates for RSN-18 at 256x192 as 2.48 GiB per 32 images (~635 MiB at batch 8)
    from rsn_lightning.models.memory import estimate_training_memory

    saved_mib = estimate_training_memory("rsn18", (192, 256), batch=8).activation_bytes / 2**20
    assert saved_mib * 0.8 < default["train_peak_mb"] < saved_mib * 4


def test_rsn_export_runs_on_the_cuda_execution_provider(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="rsn-export needs the export extra (onnx, onnxruntime)")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu")
    net = _predictor_net()
    ckpt = save_checkpoint(tmp_path / "net.ckpt", net)
    _run(["rsn-export", str(ckpt), "model.onnx", "--input-size", "64", "96"], tmp_path)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CUDAExecutionProvider"])
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    x = torch.randn(3, 3, 96, 64)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        reference = net(x).numpy()
    # float32 on both sides; the CUDA EP may use TF32-free cuDNN convolutions in another order: 1e-4 of the
    # largest value, the rsn-export verification's tolerance on the CPU (--rtol 1e-4)
    assert np.abs(out - reference).max() <= 1e-4 * np.abs(reference).max()
