"""rsn-export: a checkpoint to ONNX (dynamic batch), checked against PyTorch with onnxruntime.

    rsn-export model.ckpt model.onnx --input-size 192 256

The ONNX graph takes the normalised input ``[N, 3, H, W]`` and returns the final heatmaps
``[N, K, H/4, W/4]``; pre-processing (crop, InputNormalization) and decoding stay outside. The model's
metadata (JSON strings) says how to do them as the checkpoint does: ``normalization``, ``keypoints``,
``codec`` (``HeatmapCodec.to_dict()`` at the exported input size: ``HeatmapCodec.from_dict`` rebuilds it)
and ``test_settings`` (flip test, box extension, rescoring, OKS-NMS).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def export_onnx(net: nn.Module, path, input_size=(192, 256), opset: int = 17, dynamic_batch: bool = True,
                metadata: dict | None = None) -> Path:
    """Write ``net`` (eval mode) as ONNX; ``input_size`` is (W, H)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    w, h = int(input_size[0]), int(input_size[1])
    codec = getattr(net, "codec", None)
    if codec is not None:  # the graph's input size is the one its heatmaps decode at (checked before any work)
        codec = codec.replace(input_size=[w, h])
    dummy = torch.zeros(1, 3, h, w)
    axes = {"input": {0: "batch"}, "heatmaps": {0: "batch"}} if dynamic_batch else None
    # the TorchScript-based exporter: no onnxscript dependency, and it handles dynamic_axes directly.
    # Its deprecation notice and the tracer's notes on the network's input-shape checks (constant for
    # a fixed H, W, which an export is) are noise to a user here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(net, (dummy,), str(path), input_names=["input"], output_names=["heatmaps"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(path))
    meta = {"input_size": json.dumps([w, h])}
    norm = getattr(net, "normalization", None)
    if norm is not None and hasattr(norm, "to_dict"):
        meta["normalization"] = json.dumps(norm.to_dict())
    if getattr(net, "keypoints", None) is not None:
        meta["keypoints"] = str(net.keypoints)
    if codec is not None:
        meta["codec"] = json.dumps(codec.to_dict())
    if getattr(net, "test_settings", None) is not None:
        meta["test_settings"] = json.dumps(net.test_settings)
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def verify_onnx(path, net: nn.Module, input_size=(192, 256), batch_sizes=(1, 3), seed: int = 0
                ) -> tuple[float, float]:
    """``(largest |onnxruntime - PyTorch|, largest |PyTorch output|)`` over random inputs of the given
    batch sizes (several sizes also check the dynamic batch axis). Heatmaps are on the authors' 255 scale,
    times the network's ``output_gain``, so the difference means something only relative to the second."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    w, h = int(input_size[0]), int(input_size[1])
    worst, scale = 0.0, 0.0
    net = net.eval().cpu()
    for n in batch_sizes:
        x = torch.randn(n, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        got = sess.run(["heatmaps"], {"input": x.numpy()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} at batch {n}")
        worst = max(worst, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return worst, scale
