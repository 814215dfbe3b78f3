"""rsn-eval analysis=true: the error analysis of its own results, through the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_rsn_eval_analysis_true_writes_the_error_analysis(tmp_path):
    import torch

    from rsn_lightning.models.checkpoint import save_checkpoint
    from rsn_lightning.models.registry import create_model

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tiny.pth", create_model("rsn_tiny"))  # untrained: localises nobody
    exe = Path(sys.executable).parent / "rsn-eval"
    proc = subprocess.run(
        [str(exe), "ckpt_path=tiny.pth", "experiment=quickstart", "logger=none", "data.synthetic.num_train=8",
         "data.synthetic.num_val=6", "data.input_size=[64,96]", "+trainer.enable_progress_bar=false",
         "analysis=true", "hydra.run.dir=out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"analysis: {tmp_path / 'out' / 'error_analysis'}" in proc.stdout
    report = json.loads((tmp_path / "out" / "error_analysis" / "error_analysis.json").read_text())
    results = json.loads(next((tmp_path / "out" / "results").glob("val_*.json")).read_text())
    gt = json.loads((tmp_path / "data" / "synthetic" / "annotations" / "person_keypoints_val.json").read_text())
    assert report["detections"] == len(results)  # every result of the run analysed (<= 20 per image here)
    counted = [a for a in gt["annotations"] if a["num_keypoints"] > 0 and a["area"] >= 32 ** 2 and not a["iscrowd"]]
    assert report["ground_truth_people"] == len(counted)
    assert report["ap_after_correction"][0]["AP"] == 0.0  # random weights: no person found...
    assert report["false_negatives"]["count"] == len(counted)  # ...so every person is a false negative
    for name in ("keypoint_errors.png", "ap_improvement.png", "oks_by_size.png"):
        assert (tmp_path / "out" / "error_analysis" / name).is_file()
