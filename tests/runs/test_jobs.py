"""A job's record: job_result.json written and read back by a resumed sweep, and how a sweep's summary and
run names read the job folders."""

from __future__ import annotations

import json

import yaml

from rsn_lightning.runs.jobs import JobRecord, finite, metric_names
from rsn_lightning.runs.sweeps import job_identity, load_summary


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


def test_metrics_that_are_not_numbers_are_null_and_mpii_keeps_pckh():
    assert (finite(0.5), finite(float("nan")), finite(float("inf"))) == (0.5, None, None)
    assert metric_names("val/PCKh") == ["PCKh"] and metric_names("val/AP") == ["AP", "AR"]


def test_a_finished_record_is_written_with_its_final_metrics_and_size(tmp_path):
    record = JobRecord(tmp_path / "job", overrides=["seed=1"], model="rsn_tiny", input_size=(64, 96))
    record.done({"val/AP": 0.5, "val/AR": float("nan"), "train/loss": 1.0}, "best.ckpt")
    record.finish({"params_m": 1.5, "gflops": 0.2}, {"AP": 0.6, "AR": 0.7, "epoch": 2}, 12.5)
    record.write()
    written = json.loads((tmp_path / "job" / "job_result.json").read_text())
    assert (written["status"], written["final"], written["checkpoint"]) == ("ok", {"AP": 0.5, "AR": None},
                                                                           "best.ckpt")
    assert (written["model"], written["input_size"], written["params_m"], written["images_per_s"]) == (
        "rsn_tiny", [64, 96], 1.5, 12.5)
    assert written["best"]["epoch"] == 2 and written["wall_time_s"] >= 0


def test_stopped_requeued_and_failed_records_say_why(tmp_path):
    record = JobRecord(tmp_path)
    record.stopped((7, "last.ckpt"))
    assert (record.result["status"], record.result["checkpoint"], record.result["error"]) == (
        "stopped", "last.ckpt", "stopped by SIGTERM at step 7, last.ckpt saved")
    record.stopped(None)
    assert record.result["error"] == "stopped by SIGTERM (outside training: nothing saved)"
    record.requeued("last.ckpt", 5)
    assert (record.result["status"], record.result["requeued_at_step"]) == ("requeued", 5)
    record.failed("ValueError: bad")
    assert (record.result["status"], record.result["error"]) == ("failed", "ValueError: bad")
    record.finish({}, {}, None)
    assert record.result["final"] == {"AP": None, "AR": None}


def _earlier(folder, status, overrides=("lr=0.1",), last_ckpt=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job_result.json").write_text(json.dumps({"status": status, "overrides": list(overrides),
                                                        "final": {"AP": 0.5}, "error": "boom"}))
    if last_ckpt:
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "last.ckpt").write_text("x")


def test_a_resumed_sweep_skips_a_finished_job(tmp_path):
    _earlier(tmp_path, "ok")
    record = JobRecord(tmp_path, overrides=["lr=0.1"], multirun=True)
    assert record.finished_before()["final"] == {"AP": 0.5} and record.skipped
    assert JobRecord(tmp_path, overrides=["lr=0.1"]).finished_before() is None  # a single run never skips


def test_a_resumed_sweep_resumes_an_unfinished_job_and_restarts_a_failed_one(tmp_path):
    _earlier(tmp_path / "requeued", "requeued")
    record = JobRecord(tmp_path / "requeued", overrides=["lr=0.1"], multirun=True)
    assert record.finished_before() is None
    assert record.unfinished_checkpoint() == str(tmp_path / "requeued" / "checkpoints" / "last.ckpt")
    _earlier(tmp_path / "failed", "failed")
    assert JobRecord(tmp_path / "failed", overrides=["lr=0.1"], multirun=True).unfinished_checkpoint() is None
    _earlier(tmp_path / "none", "requeued", last_ckpt=False)
    assert JobRecord(tmp_path / "none", overrides=["lr=0.1"], multirun=True).unfinished_checkpoint() is None


def test_a_record_of_other_overrides_is_not_this_jobs(tmp_path):
    _earlier(tmp_path, "ok", overrides=["lr=0.2"])
    record = JobRecord(tmp_path, overrides=["lr=0.1"], multirun=True)
    assert record.earlier is None and record.finished_before() is None
