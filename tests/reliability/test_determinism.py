"""Same seed, same CPU, same config: two rsn-train runs give identical metrics and identical checkpoint
tensors (the console script as a user types it, tiny data)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

BIN = Path(sys.executable).parent


def _train(root: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    args = ["experiment=quickstart", f"data.root={root}", "data.synthetic=null", "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1", "trainer.log_every_n_steps=1", "data.batch_size=8",
            "callbacks.pictures.num_images=0", "seed=123",
            f"hydra.run.dir={out}"]
    return subprocess.run([str(BIN / "rsn-train"), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _metrics(out: Path) -> list[dict]:
    with open(out / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # wall-clock time and throughput (ThroughputMonitor's) are the logged values that may differ between runs
    return [{k: v for k, v in r.items() if not k.endswith(("_per_sec", "/time"))} for r in rows]


def test_same_seed_same_metrics_and_checkpoint_tensors(synthetic_root, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        proc = _train(synthetic_root, out, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (_metrics(out) for out in runs)
    assert any(r.get("val/AP") for r in a) and any(r.get("train/loss") for r in a)
    assert a == b
    sa, sb = (torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for out in runs)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
