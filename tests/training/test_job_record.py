"""A job's record as the job runs it: written at a stop for a requeue before submitit's handler requeues and
exits, marked failed when the requeue is refused, and its wandb run closed as not failed."""

from __future__ import annotations

import json

import pytest

from rsn_lightning.training.job_record import TrainingJobRecord


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

    from rsn_lightning.training import requeue

    calls = []

    def submitit_like(signum, frame):  # what SignalHandler.checkpoint_and_try_requeue does on rank 0
        calls.append(signum)
        raise SystemExit(-1)

    before = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        requeue.install(["SIGUSR1", "SIGUSR2"])
        with pytest.raises(SystemExit):
            _stop_for_requeue(TrainingJobRecord(_record_cfg(tmp_path)))
        assert calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is submitit_like  # handed back
        record = json.loads((tmp_path / "job_result.json").read_text())
        assert (record["status"], record["checkpoint"], record["requeued_at_step"]) == ("requeued", "last.ckpt", 5)
    finally:
        requeue.uninstall()
        signal.signal(signal.SIGUSR2, before)


def test_a_stop_that_cannot_be_requeued_is_recorded_as_failed_with_the_reason(tmp_path):
    import signal

    from rsn_lightning.training import requeue

    def refuses(signum, frame):  # submitit after max_num_timeout requeues: UncompletedJobError
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    before = signal.signal(signal.SIGUSR2, refuses)
    try:
        requeue.install(["SIGUSR2"])
        with pytest.raises(RuntimeError, match="timed-out too many times"):
            _stop_for_requeue(TrainingJobRecord(_record_cfg(tmp_path)))
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
    from offline_wandb import wandb_runs

    from rsn_lightning.training.loggers import wandb_logger

    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no key: offline, no network
    job = tmp_path / "job"
    first = wandb_logger(save_dir=str(job), project="requeue_test")
    first.experiment.log({"train/loss": 1.0})
    _stop_for_requeue(TrainingJobRecord(_record_cfg(job)))  # no SLURM job: recorded, closed, nothing requeues it
    # wandb's service writes the run file on its own schedule; a requeued job's process exits here, which
    # shuts the service down and flushes the file: the same as teardown (else the read can race the write)
    wandb.teardown()
    [run] = wandb_runs(job)
    assert (run["exit_code"], run["status"]) == (0, "requeued")
    assert wandb_logger(save_dir=str(job), project="requeue_test").version == first.version  # the same run id
