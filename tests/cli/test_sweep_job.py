"""The small parts of a sweep job: run names from swept values, GPU slots, SLURM sizing and requeue."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from rsn_lightning.cli.sweep_job import requeued_checkpoint, slurm_count, take_slot
from rsn_lightning.evaluation.sweeps import job_identity, load_summary


def fake_job(sweep, job, overrides, sweep_overrides, experiment="quickstart", sweep_name=None):
    """A job folder as Hydra leaves it: .hydra/{overrides,config,hydra}.yaml, multirun.yaml above."""
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": sweep_overrides}}}))
    hydra_dir = sweep / job / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump({"task_name": "train", "sweep_name": sweep_name}))
    choices = {"experiment": experiment}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    return sweep / job


def test_run_name_shows_the_swept_values_only(tmp_path):
    job = fake_job(tmp_path / "2026-01-01_00-00-00", "3",
                   ["experiment=quickstart", "model.net.num_stages=2", "model.net.width_mult=0.5", "seed=1"],
                   ["experiment=quickstart", "model.net.num_stages=1,2", "model.net.width_mult=0.5,1.0", "seed=1"])
    identity = job_identity(job / "checkpoints" / "last.ckpt")  # from anywhere inside the job folder
    assert identity["name"] == "num_stages=2,width_mult=0.5"
    assert identity["group"] == "2026-01-01_00-00-00"
    assert identity["tags"] == ["quickstart", "num_stages=2", "width_mult=0.5"]


def test_same_last_part_keeps_full_keys_and_sweep_name_sets_the_group(tmp_path):
    job = fake_job(tmp_path / "s", "0", ["model.optimizer.lr=0.1", "model.scheduler.lr=0.2"],
                   ["model.optimizer.lr=0.1,0.2", "model.scheduler.lr=0.2,0.3"], sweep_name="lr_study")
    identity = job_identity(job)
    assert identity["name"] == "model.optimizer.lr=0.1,model.scheduler.lr=0.2"
    assert identity["group"] == "lr_study"


def test_nothing_swept_names_the_run_after_the_experiment(tmp_path):
    job = fake_job(tmp_path / "s", "0", ["experiment=quickstart"], ["experiment=quickstart"])
    assert job_identity(job)["name"] == "quickstart"


def test_a_killed_job_is_a_failed_row_of_the_summary(tmp_path):
    sweep = tmp_path / "s"
    fake_job(sweep, "0", ["model.optimizer.lr=0.1"], ["model.optimizer.lr=0.1,0.2"])
    fake_job(sweep, "1", ["model.optimizer.lr=0.2"], ["model.optimizer.lr=0.1,0.2"])
    (sweep / "0" / "job_result.json").write_text(json.dumps({
        "status": "ok", "final": {"AP": 0.5, "AR": 0.6}, "best": {"AP": 0.55, "AR": 0.6, "epoch": 3},
        "input_size": [96, 128]}))
    rows = load_summary(sweep)
    assert [(r["job"], r["status"], r["model.optimizer.lr"]) for r in rows] == [
        ("0", "ok", "0.1"), ("1", "failed", "0.2")]
    assert (rows[0]["best_AP"], rows[0]["input_size"]) == (0.55, "96x128")
    assert "no job_result.json" in rows[1]["error"]


def test_gpu_slots_are_exclusive_until_released(tmp_path):
    first, lock0 = take_slot(tmp_path, 2)
    second, lock1 = take_slot(tmp_path, 2)
    assert (first, second) == (0, 1)
    with pytest.raises(TimeoutError, match="no free slot among 2"):
        take_slot(tmp_path, 2, wait_s=0)
    lock0.close()
    assert take_slot(tmp_path, 2, wait_s=0)[0] == 0
    lock1.close()


def test_slurm_sizes_are_numbers(tmp_path):
    assert slurm_count(4, "trainer.devices") == 4
    assert slurm_count([0, 1], "trainer.devices") == 2
    for bad in (-1, "auto", 0):
        with pytest.raises(ValueError, match="set trainer.devices=<GPUs per node>"):
            slurm_count(bad, "trainer.devices")


def test_a_requeued_job_resumes_from_its_newest_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_text("x")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeued_checkpoint(tmp_path) is None  # a first start trains from scratch
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(tmp_path) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    hpc.write_text("x")
    os.utime(last, (1, 1))
    assert requeued_checkpoint(tmp_path) == str(hpc)
