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


def _record_cfg(out):
    from omegaconf import OmegaConf

    return OmegaConf.create({"paths": {"output_dir": str(out)}, "monitor": "val/AP",
                             "data": {"input_size": [64, 96]}, "model": {"net": {"name": "rsn"}}})


def _stop_for_requeue(record):
    import signal

    from rsn_lightning.training.requeue import RequeueRequested

    with record:
        raise RequeueRequested(signal.SIGUSR2, "last.ckpt", 5, ["true"])


def test_submitit_requeues_the_stopped_job_and_exits_and_the_record_says_requeued(tmp_path):
    """Submitit's USR2 handler (installed before the job runs) requeues and then exits the process: the job's
    record is written first, as requeued, and its exit goes through."""
    import signal

    from rsn_lightning.cli.sweep_job import JobRecord
    from rsn_lightning.training import requeue

    calls = []

    def submitit_like(signum, frame):  # what SignalHandler.checkpoint_and_try_requeue does on rank 0
        calls.append(signum)
        raise SystemExit(-1)

    before = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        requeue.install(["SIGUSR1", "SIGUSR2"])
        with pytest.raises(SystemExit):
            _stop_for_requeue(JobRecord(_record_cfg(tmp_path)))
        assert calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is submitit_like  # handed back
        record = json.loads((tmp_path / "job_result.json").read_text())
        assert (record["status"], record["checkpoint"], record["requeued_at_step"]) == ("requeued", "last.ckpt", 5)
    finally:
        requeue.uninstall()
        signal.signal(signal.SIGUSR2, before)


def test_a_stop_that_cannot_be_requeued_is_recorded_as_failed_with_the_reason(tmp_path):
    import signal

    from rsn_lightning.cli.sweep_job import JobRecord
    from rsn_lightning.training import requeue

    def refuses(signum, frame):  # submitit after max_num_timeout requeues: UncompletedJobError
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    before = signal.signal(signal.SIGUSR2, refuses)
    try:
        requeue.install(["SIGUSR2"])
        with pytest.raises(RuntimeError, match="timed-out too many times"):
            _stop_for_requeue(JobRecord(_record_cfg(tmp_path)))
        record = json.loads((tmp_path / "job_result.json").read_text())
        assert record["status"] == "failed"
        assert record["error"] == ("stopped at the time-limit signal but not requeued: "
                                   "Job not requeued because: timed-out too many times.")
    finally:
        requeue.uninstall()
        signal.signal(signal.SIGUSR2, before)


def test_a_requeued_job_closes_its_wandb_run_as_not_failed_and_the_next_start_takes_the_same_run(tmp_path,
                                                                                                 monkeypatch):
    import wandb
    from test_sweeps import wandb_runs

    from rsn_lightning.cli.sweep_job import JobRecord
    from rsn_lightning.training.loggers import wandb_logger

    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no key: offline, no network
    job = tmp_path / "job"
    first = wandb_logger(save_dir=str(job), project="requeue_test")
    first.experiment.log({"train/loss": 1.0})
    _stop_for_requeue(JobRecord(_record_cfg(job)))  # no SLURM job: recorded, closed, nothing requeues it
    # wandb's service writes the run file on its own schedule; a requeued job's process exits here, which
    # shuts the service down and flushes the file: the same as teardown (else the read can race the write)
    wandb.teardown()
    [run] = wandb_runs(job)
    assert (run["exit_code"], run["status"]) == (0, "requeued")
    assert wandb_logger(save_dir=str(job), project="requeue_test").version == first.version  # the same run id
