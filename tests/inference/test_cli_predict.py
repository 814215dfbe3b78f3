"""rsn-predict as a user runs it: the Hydra app in a fresh process, on a real photo with detections."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np


def test_rsn_predict_writes_json_and_pictures(coco_mini_dir, small_net, tmp_path):
    from rsn_lightning.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "tiny.pth", small_net, small_net.normalization, "coco")
    image = coco_mini_dir / "000000197388.jpg"
    out_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rsn_lightning.cli.predict", f"ckpt_path={ckpt}", f"input={image}",
           f"detections={coco_mini_dir / 'test_coco_det_AP_H_56.json'}", "device=cpu", "batch_size=16",
           f"hydra.run.dir={out_dir}", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"results JSON: {out_dir / 'results.json'}" in proc.stdout
    assert str(out_dir / "pictures") in proc.stdout
    results = json.loads((out_dir / "results.json").read_text())
    assert results and {r["image_id"] for r in results} == {197388}
    pic = cv2.imread(str(out_dir / "pictures" / "000000197388.png"))
    original = cv2.imread(str(image))
    assert pic.shape == original.shape and np.any(pic != original)
