"""ONNX export of a small RSN: onnxruntime matches PyTorch, the batch axis is dynamic, the CLI works."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from rsn_lightning.inference.export import export_onnx, main, verify_onnx  # noqa: E402


def test_onnx_matches_pytorch_with_dynamic_batch(small_net, tmp_path):
    path = export_onnx(small_net, tmp_path / "net.onnx", input_size=(64, 96))
    assert verify_onnx(path, small_net, (64, 96), batch_sizes=(1, 3)) < 1e-4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 96, 64)
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = small_net(x).numpy()
    assert got.shape == (5, 17, 24, 16)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["input_size"]) == [64, 96] and meta["keypoints"] == "coco"
    assert json.loads(meta["normalization"])["channel_order"] == "BGR"


def test_cli(small_net, tmp_path, capsys):
    from rsn_lightning.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "tiny.pth", small_net, small_net.normalization, "coco")
    out = tmp_path / "tiny.onnx"
    assert main([str(ckpt), str(out), "--input-size", "64", "96"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max |diff|" in text
