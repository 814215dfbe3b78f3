"""rsn-export takes the checkpoint's codec: its input size by default, and the codec and test-time settings
in the ONNX metadata, from which a user of the .onnx decodes as rsn-eval and rsn-predict do."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from rsn_lightning.cli.export import main  # noqa: E402
from rsn_lightning.codec import HeatmapCodec  # noqa: E402
from rsn_lightning.models.checkpoint import load_model, save_checkpoint  # noqa: E402


def test_export_records_the_checkpoints_codec_and_settings(small_net, tmp_path, capsys):
    codec = HeatmapCodec((64, 96), target_type="unbiased", decode="dark", blur_kernel=7)
    settings = {"flip": False, "box_extension": [0.25, 0.25], "oks_nms": "oks", "nms_threshold": 0.8}
    ckpt = save_checkpoint(tmp_path / "tiny.pth", small_net, small_net.normalization, "coco", codec=codec,
                           test_settings=settings)
    out = tmp_path / "tiny.onnx"
    assert main([str(ckpt), str(out), "--no-verify"]) == 0  # no --input-size: the codec's
    assert "input [N, 3, 96, 64]" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    rebuilt = HeatmapCodec.from_dict(json.loads(meta["codec"]))
    assert rebuilt == codec
    assert json.loads(meta["test_settings"]) == load_model(ckpt).test_settings
    assert json.loads(meta["test_settings"])["box_extension"] == [0.25, 0.25]

    # the metadata's codec decodes the ONNX heatmaps to the checkpoint's keypoints
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_heatmaps = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        torch_heatmaps = load_model(ckpt)(x).numpy()
    np.testing.assert_allclose(rebuilt.decode(onnx_heatmaps)[0], codec.decode(torch_heatmaps)[0], atol=1e-3)


def test_export_at_another_input_size_records_a_codec_for_it(small_net, tmp_path):
    ckpt = save_checkpoint(tmp_path / "tiny.pth", small_net, small_net.normalization, "coco")
    out = tmp_path / "tiny.onnx"
    assert main([str(ckpt), str(out), "--input-size", "64", "128", "--no-verify"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["codec"])["input_size"] == [64, 128] and json.loads(meta["input_size"]) == [64, 128]
    # an input size no codec can decode: a clear error, no file
    assert main([str(ckpt), str(tmp_path / "bad.onnx"), "--input-size", "62", "128", "--no-verify"]) == 2
    assert not (tmp_path / "bad.onnx").exists()
