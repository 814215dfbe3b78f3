"""Validation under DDP: two real CPU processes (gloo) each decode part of the val split; the gathered
predictions are the single-process ones, every instance exactly once (DistributedSampler's padding
repeats are dropped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed
from module_settings import lit_module
from test_module import make_datamodule, make_trainer, tiny_net

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with the gloo backend")


def build(root, out, weights):
    net = tiny_net()
    net.load_state_dict(torch.load(weights, weights_only=True))
    dm = make_datamodule(root, batch_size=4)
    return lit_module(net, dm, test={"flip": False}, output_dir=str(out)), dm


CHILD = textwrap.dedent(f"""
    import json, sys
    from pathlib import Path
    import torch
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from test_ddp_gather import build
    from test_module import make_trainer

    root, out, weights = map(Path, sys.argv[1:4])
    # not seeded on purpose: each process's torch seed differs, and the ranks must still draw one training
    # order for the DistributedSampler to split (the DataModule broadcasts rank 0's seed)
    module, dm = build(root, out, weights)
    counts = []
    # how often this rank runs COCO's evaluation (the real one, counted)
    scored, validator = [], module.validator
    module.validator = lambda *a, **k: scored.append(1) or validator(*a, **k)

    class CountLocal(__import__("pytorch_lightning").Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            counts.append(int(sum(len(i) for i in pl_module.predictions.index)))

    trainer = make_trainer(out, accelerator="cpu", devices=2, strategy="ddp", callbacks=[CountLocal()])
    trainer.validate(module, datamodule=dm)
    # training through Lightning's DistributedSampler wrapper around the (index, seed) sampler
    fit_module, fit_dm = build(root, out / "fit", weights)
    seen = []

    class Indices(__import__("pytorch_lightning").Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.extend(batch["index"].tolist())

    fitter = make_trainer(out / "fit", accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                          limit_train_batches=2, limit_val_batches=0, callbacks=[Indices()])
    fitter.fit(fit_module, datamodule=fit_dm)
    (out / f"rank{{trainer.global_rank}}.json").write_text(json.dumps(
        {{"world_size": trainer.world_size, "local": counts[0], "AP": module.last_val_stats["AP"],
          "scored": len(scored), "fit_steps": fitter.global_step, "train_indices": seen}}))
""")


def _results(out: Path) -> list[dict]:
    files = sorted((out / "results").glob("val_*.json"))
    assert len(files) == 1, files
    return sorted(json.loads(files[0].read_text()), key=lambda r: (r["image_id"], r["keypoints"][:2]))


def test_ddp_validation_gathers_each_instance_once(synthetic_root, tmp_path):
    torch.manual_seed(3)
    weights = tmp_path / "weights.pt"
    torch.save(tiny_net().state_dict(), weights)

    module, dm = build(synthetic_root, tmp_path / "single", weights)
    make_trainer(tmp_path / "single").validate(module, datamodule=dm)
    single = _results(tmp_path / "single")
    num_instances = len(dm.val_dataset)
    assert len(single) == num_instances
    assert num_instances % 2 == 1, "an odd count makes DistributedSampler pad with a repeat"

    script = tmp_path / "ddp_job.py"
    script.write_text(CHILD)
    out = tmp_path / "ddp"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    proc = subprocess.run([sys.executable, str(script), str(synthetic_root), str(out), str(weights)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    # each rank decoded half, padded to equal length; together one more than the instances
    assert [r["local"] for r in ranks] == [(num_instances + 1) // 2] * 2
    gathered = _results(out)
    assert len(gathered) == num_instances
    for a, b in zip(single, gathered):
        assert a["image_id"] == b["image_id"]
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    # training under DDP: two steps on each rank, on different samples
    assert [r["scored"] for r in ranks] == [1, 0]  # COCO's evaluation on rank 0; rank 1 takes its numbers
    assert [r["fit_steps"] for r in ranks] == [2, 2]
    assert len(ranks[0]["train_indices"]) == len(ranks[1]["train_indices"]) == 8
    assert not set(ranks[0]["train_indices"]) & set(ranks[1]["train_indices"])
    # every rank evaluated the same gathered set
    assert ranks[0]["AP"] == pytest.approx(ranks[1]["AP"]) == pytest.approx(module.last_val_stats["AP"], abs=1e-6)
