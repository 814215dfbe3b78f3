"""Sweeps as a user types them: `rsn-train -m ...` from a folder outside the repo, with no path overrides.
One tiny 3-job sweep (one job fails on purpose) checks job_result.json, summary.csv/summary.md and the wandb
runs (read from their offline files); smaller sweeps check the joblib and submitit launchers and DDP inside a
multirun; the SLURM launcher is composed."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from offline_wandb import wandb_runs
from rsn_lightning.runs.sweeps import load_summary, summary_rows

BIN = Path(sys.executable).parent
# size-limiting overrides: a 12-image synthetic set at 64x96, 2 batches per epoch, logged at every step
TINY = [
    "experiment=quickstart", "callbacks=[model_checkpoint,lr_monitor,throughput]",
    "data.synthetic.num_train=12", "data.synthetic.num_val=4", "data.batch_size=4", "data.input_size=[64,96]",
    "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
    "+trainer.enable_progress_bar=false", "+trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1", "callbacks.throughput.window_size=2",
]
COLUMNS = ["job", "status", "model.net.output_gain", "model", "input_size", "num_stages", "width_mult", "prm",
           "params_m", "gflops", "final_AP", "final_AR", "best_AP", "best_AR", "images_per_s", "wall_time_s",
           "error", "output_dir"]


def tiny_with(*overrides: str) -> list[str]:
    """TINY with each of ``overrides`` in place of TINY's value for its key (or added)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [*(a for a in TINY if a.split("=", 1)[0] not in keys), *overrides]


def user_env(tmp: Path, **extra) -> dict:
    """The environment of a user without wandb credentials (no key, no netrc), one thread per job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RSN_"))}
    return {**env, "NETRC": str(tmp / "no-netrc"), "OMP_NUM_THREADS": "1", **extra}


def rsn(tmp: Path, app: str, *args: str, env: dict | None = None, timeout: int = 300):
    return subprocess.run([str(BIN / app), *args], cwd=tmp, env=env or user_env(tmp), capture_output=True,
                          text=True, timeout=timeout)


def only_sweep(tmp: Path) -> Path:
    sweeps = list((tmp / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """output gains 16 and 32 train; an infinite gain diverges at the first step (NaN loss, the
    model.nonfinite_loss=stop error), after its wandb run has started: a job that fails mid-run."""
    tmp = tmp_path_factory.mktemp("sweep")
    proc = rsn(tmp, "rsn-train", "-m", *TINY, "logger=many_loggers", "trainer.max_epochs=2",
               "model.net.output_gain=16,32,inf")
    return tmp, only_sweep(tmp), proc


def test_sweep_leaves_a_summary_with_every_job_and_keeps_the_failed_one(sweep):
    tmp, folder, proc = sweep
    assert proc.returncode == 1, proc.stderr[-3000:]  # a failed job fails the command, after the summary
    assert "1 of 3 jobs failed (jobs 2)" in proc.stderr
    assert "Sweep summary (3 jobs, 1 failed)" in proc.stdout
    with (folder / "summary.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS
    assert [(r["job"], r["status"], r["model.net.output_gain"]) for r in rows] == [
        ("0", "ok", "16"), ("1", "ok", "32"), ("2", "failed", "inf")]
    assert "loss is NaN/Inf" in rows[2]["error"] and rows[2]["final_AP"] == ""
    md = (folder / "summary.md").read_text().splitlines()
    assert md[0].startswith("| job | status | model.net.output_gain |") and len(md) == 2 + 3
    assert "loss is NaN/Inf" in md[-1]

    for row in rows[:2]:
        job = folder / row["job"]
        result = json.loads((job / "job_result.json").read_text())
        assert result["status"] == "ok" and result["error"] is None
        assert f"model.net.output_gain={row['model.net.output_gain']}" in result["overrides"]
        assert (row["model"], row["input_size"], row["num_stages"], row["prm"]) == (
            "rsn_tiny", "64x96", "1", "last_unit")
        # the parameter count of the weights the job saved (batch-norm statistics are buffers, not parameters)
        state = torch.load(result["checkpoint"], weights_only=True, map_location="cpu")["state_dict"]
        params = sum(v.numel() for k, v in state.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        assert float(row["params_m"]) == pytest.approx(params / 1e6, abs=1e-4)
        assert 0 < float(row["gflops"]) < 0.26  # the README's 0.26 GMAC of rsn_tiny at 256x192; here 64x96
        # final and best as logged by the job's own CSV logger: best over the 2 validations during training
        with (job / "csv" / "metrics.csv").open(newline="") as f:
            logged = [r for r in csv.DictReader(f) if r.get("val/AP")]
        assert float(row["final_AP"]) == pytest.approx(float(logged[-1]["val/AP"]))
        during = logged[:2]
        assert float(row["best_AP"]) == pytest.approx(max(float(r["val/AP"]) for r in during))
        assert result["best"]["epoch"] in (0, 1)
        assert float(row["wall_time_s"]) > 0
        # Lightning's LearningRateMonitor and ThroughputMonitor in the CSV log; the job's images/s is the
        # latter's last totals (one device here)
        with (job / "csv" / "metrics.csv").open(newline="") as f:
            steps = list(csv.DictReader(f))
        # lr 2e-3 per 32 images x 4 / 32, warm-up from 0.1 over the run's 4 steps: x0.1, then x(0.1 + 0.9 / 4)
        assert [float(r["train/lr"]) for r in steps if r.get("train/lr")][:2] == pytest.approx([2.5e-5, 8.125e-5])
        assert all(float(r["train/device/samples_per_sec"]) > 0 for r in steps if r.get("train/device/samples_per_sec"))
        totals = [r for r in steps if r.get("train/time")][-1]
        assert float(totals["train/samples"]) == 4 * 2 * 2  # 4 images x 2 batches x 2 epochs
        assert float(row["images_per_s"]) == pytest.approx(float(totals["train/samples"]) / float(totals["train/time"]),
                                                           rel=1e-3)

    # read back as the notebooks do, and rebuilt identically from the job folders without summary.csv
    loaded = load_summary(folder)
    assert [r["status"] for r in loaded] == ["ok", "ok", "failed"] and loaded[0]["num_stages"] == 1
    assert loaded == summary_rows(folder)[1]
    assert loaded[1]["params_m"] == pytest.approx(float(rows[1]["params_m"]))


def test_one_wandb_run_per_job_named_by_its_swept_value_in_one_group(sweep):
    tmp, folder, proc = sweep
    runs = wandb_runs(folder)
    assert [r["folder"].name for r in runs] == ["0", "1", "2"]  # each job's run in its own folder
    assert [r["name"] for r in runs] == ["output_gain=16", "output_gain=32", "output_gain=inf"]
    assert {r["group"] for r in runs} == {folder.name}
    assert {r["job_type"] for r in runs} == {"train"}
    assert all({"quickstart", r["name"]} <= set(r["tags"]) for r in runs)
    # finished when the job ended, also the failed one, with the model's size in the run summary
    assert [r["exit_code"] for r in runs] == [0, 0, 1]
    assert [r["status"] for r in runs] == ["ok", "ok", "failed"]
    assert all(r["params_m"] > 0 and r["gflops"] > 0 for r in runs)
    # the README's upload of every sweep's offline runs finds the three (--dry-run: no account, no network)
    env = {**user_env(tmp), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run("wandb sync --dry-run logs/train/multiruns/*/*/wandb/offline-run-*", shell=True, cwd=tmp,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Would sync 3 run(s)" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_eval_of_a_sweep_checkpoint_joins_its_group(sweep):
    tmp, folder, _ = sweep
    checkpoint = json.loads((folder / "0" / "job_result.json").read_text())["checkpoint"]
    proc = rsn(tmp, "rsn-eval", f"ckpt_path={checkpoint}", "logger=wandb", *TINY[2:6],
               "experiment=quickstart", "hydra.run.dir=eval_run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = wandb_runs(tmp / "eval_run")
    assert (run["name"], run["group"], run["job_type"]) == ("output_gain=16", folder.name, "eval")


def test_wandb_with_a_key_but_no_server_goes_offline_quickly(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = user_env(tmp_path, WANDB_API_KEY="x" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    proc = rsn(tmp_path, "rsn-train", *TINY, "logger=wandb", "debug=fdr", "hydra.run.dir=run", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 120  # wandb alone would retry the dead server for minutes
    assert "logging OFFLINE" in proc.stdout + proc.stderr
    [run] = wandb_runs(tmp_path / "run")
    assert run["job_type"] == "train" and run["name"] == "quickstart"  # nothing swept: the experiment's name


def launcher_config(*overrides: str) -> dict:
    """hydra.launcher as a job of ``rsn-train -m <overrides>`` gets it, resolved (composed in-process:
    Hydra refuses ``-m`` with ``--cfg``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rsn_lightning.cli.common import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_takes_its_size_from_the_trainer(tmp_path):
    """`rsn-train -m hydra/launcher=slurm trainer=ddp trainer.devices=4 trainer.num_nodes=2`: 2 nodes of 4 tasks
    and 4 GPUs; any trainer, not only multinode; slurm_cpu asks for no GPUs; all devices (-1) is refused."""
    launcher = launcher_config("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert launcher["max_num_timeout"] > 0  # requeued at the time limit: the job resumes from its last.ckpt
    assert launcher["_target_"] == "hydra_plugins.rsn_lightning_launchers.SlurmLauncher"
    launcher = launcher_config("hydra/launcher=slurm")
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (1, 1, 1)
    launcher = launcher_config("hydra/launcher=slurm_cpu", "trainer=ddp_cpu")
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["cpus_per_task"]) == (2, None, 1)
    proc = rsn(tmp_path, "rsn-train", "hydra/launcher=slurm", "trainer=ddp", "--cfg", "all", "--resolve")
    assert proc.returncode == 1 and "set trainer.devices=<GPUs per node>" in proc.stderr


# slow: the README's joblib sweep (tests/cli/test_readme_commands.py) and the SLURM sweeps (submitit's slurm
# executor, on the local cluster) run the same launchers in the default selection
@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                                      ["hydra/launcher=submitit_local"]], ids=["joblib", "submitit_local"])
def test_launchers_run_the_jobs_and_leave_the_summary(launcher, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if "joblib" in launcher[0]
                        else "hydra_plugins.hydra_submitit_launcher", reason="launcher plugins: the dev extra")
    proc = rsn(tmp_path, "rsn-train", "-m", *TINY, "logger=csv", "trainer.max_epochs=1", *launcher,
               "model.optimizer.lr=1e-3,2e-3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = only_sweep(tmp_path)
    assert [(r["job"], r["status"], r["model.optimizer.lr"]) for r in load_summary(folder)] == [
        ("0", "ok", "0.001"), ("1", "ok", "0.002")]
    if "joblib" in launcher[0]:  # two jobs side by side split the cores
        threads = max(1, (os.cpu_count() or 1) // 2)
        for job in "01":
            assert f"joblib job: {threads} torch threads" in (folder / job / "train.log").read_text()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with the gloo backend")
def test_ddp_inside_a_multirun_runs_each_job_once_in_its_own_folder(tmp_path):
    """Lightning starts rank 1 by re-running the command line: each job's two ranks train that job, in its
    folder; the sweep is not started again by a rank and the second job gets ranks of its own."""
    proc = rsn(tmp_path, "rsn-train", "-m", *TINY, "logger=csv", "trainer.max_epochs=1", "trainer=ddp_cpu",
               "trainer.strategy=ddp", "model.optimizer.lr=1e-3,2e-3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count("Starting with 2 processes") == 2  # both jobs, each with 2 ranks
    assert output.count("Launching 2 jobs locally") == 1  # the sweep started once
    folder = only_sweep(tmp_path)
    assert [r["status"] for r in load_summary(folder)] == ["ok", "ok"]
    assert sorted(p.name for p in (tmp_path / "logs" / "train").iterdir()) == ["multiruns"]  # no runs/ of a rank
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["0", "1"]
    assert not list(folder.glob("*/.pl_ddp*"))


@pytest.mark.slow  # the slurm test below requeues a real SLURM job, which resumes the same way
def test_a_job_requeued_by_slurm_resumes_from_its_last_checkpoint(tmp_path):
    """The same job started again in its folder with SLURM_RESTART_COUNT set (as SLURM does on a requeue)
    continues from checkpoints/last.ckpt instead of training from scratch."""
    first = rsn(tmp_path, "rsn-train", *TINY, "logger=csv", "trainer.max_epochs=1", "test=false", "hydra.run.dir=job")
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "job" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True, map_location="cpu")
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1  # the first job's one epoch
    again = rsn(tmp_path, "rsn-train", *TINY, "logger=csv", "trainer.max_epochs=2", "test=false", "hydra.run.dir=job",
                env=user_env(tmp_path, SLURM_RESTART_COUNT="1"))
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    resumed = re.search(r"resuming from (\S+/job/checkpoints/last\S*\.ckpt)", output)
    assert resumed, output[-3000:]
    assert f"Restored all states from the checkpoint at {resumed[1]}" in output  # Lightning's own word


def test_a_killed_sweep_run_again_skips_done_jobs_resumes_the_unfinished_one_and_summarises_all(tmp_path):
    """The launching process killed mid-sweep (job 0 done, job 1 with its first checkpoint, job 2 not
    started); the same command again finishes the sweep: job 0 skipped (its record kept), job 1 resumed
    from its last.ckpt, job 2 run, the summary over all three. Another sweep in that folder is refused."""
    import signal

    from rsn_lightning.runs.sweeps import JOB_RESULT

    args = ["-m", *TINY, "logger=csv", "trainer.max_epochs=2", "sweep_name=grid", "model.optimizer.lr=1e-3,2e-3,4e-3"]
    folder = tmp_path / "logs" / "train" / "multiruns" / "grid"
    first = subprocess.Popen([str(BIN / "rsn-train"), *args], cwd=tmp_path, env=user_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not ((folder / "0" / JOB_RESULT).is_file() and (folder / "1" / "checkpoints" / "last.ckpt").is_file()):
        assert first.poll() is None and time.monotonic() < deadline, "the sweep ended before it was killed"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (folder / "1" / JOB_RESULT).exists() and not (folder / "2").exists()
    job0 = (folder / "0" / JOB_RESULT).read_text()

    again = rsn(tmp_path, "rsn-train", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert f"job {folder / '0'} finished in an earlier start of this sweep" in output
    assert (folder / "0" / JOB_RESULT).read_text() == job0  # its record stands
    last = folder / "1" / "checkpoints" / "last.ckpt"
    assert f"resuming from {last}" in output
    assert f"Restored all states from the checkpoint at {last}" in output  # Lightning's own word
    assert [(r["job"], r["status"]) for r in load_summary(folder)] == [("0", "ok"), ("1", "ok"), ("2", "ok")]
    assert "Sweep summary (3 jobs, 0 failed)" in again.stdout

    other = rsn(tmp_path, "rsn-train", "-m", *TINY, "logger=csv", "sweep_name=grid", "model.optimizer.lr=1e-3,8e-3")
    assert other.returncode == 2, other.stderr[-3000:]
    assert f"error: the sweep folder {folder} holds another sweep" in other.stderr and "Traceback" not in other.stderr


def test_sigterm_mid_training_saves_that_step_records_stopped_and_ckpt_path_last_resumes_exactly(tmp_path):
    """SIGTERM (pre-emption, scancel, kill) at a training step: last.ckpt of that step, the job recorded as
    stopped, exit status 143; ckpt_path=last in its folder ends with the weights of a run never stopped."""
    import signal

    # the requeue callback (in the default callbacks) writes the checkpoint at SIGTERM
    args = [*tiny_with("callbacks=[model_checkpoint,lr_monitor,throughput,requeue]", "+trainer.limit_train_batches=6"),
            "logger=csv", "trainer.max_epochs=3", "test=false"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stopped = subprocess.Popen([str(BIN / "rsn-train"), *args, "hydra.run.dir=run"], cwd=tmp_path,
                               env=user_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not last.is_file():  # the first epoch's checkpoint: training has begun its second epoch
        assert stopped.poll() is None and time.monotonic() < deadline, "the run ended before the signal"
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)
    stdout, stderr = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, stderr[-3000:]
    record = json.loads((tmp_path / "run" / "job_result.json").read_text())
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 6 <= step < 18 and record["status"] == "stopped", stderr[-3000:]
    assert record["checkpoint"] == str(last.resolve()), stderr[-3000:]
    assert record["error"] == f"stopped by SIGTERM at step {step}, {last.resolve()} saved"
    assert f"stopped by SIGTERM at step {step}" in stdout and "Traceback" not in stdout + stderr

    resumed = rsn(tmp_path, "rsn-train", *args, "hydra.run.dir=run", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {last.resolve()}" in resumed.stdout + resumed.stderr
    straight = rsn(tmp_path, "rsn-train", *args, "hydra.run.dir=straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = torch.load(last, map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 18
    for name, tensor in b["state_dict"].items():
        assert torch.equal(a["state_dict"][name], tensor), name


@pytest.mark.slurm
def test_a_slurm_job_requeued_mid_training_resumes_and_ends_with_the_weights_of_a_job_never_stopped(slurm_cluster,
                                                                                                    tmp_path):
    """The CPU-cluster sweep of docs/clusters.md on the local SLURM cluster: two identical jobs, each DDP over
    2 SLURM tasks (gloo); `scontrol requeue` of the first mid-training: SIGTERM, last.ckpt at that step,
    SLURM starts it again, it resumes and ends with the second job's weights."""
    import glob

    args = ["-m", "hydra/launcher=slurm_cpu", "trainer=ddp_cpu",
            # the ranks agree on the stop every 6 steps, an epoch: resuming mid-epoch is exact in one process only
            # (data/datamodule.py: the sampler's skip), so the stop lands where a DDP resume is exact too
            *tiny_with("callbacks=[model_checkpoint,lr_monitor,throughput,requeue]", "data.synthetic.num_train=48",
                       "+trainer.limit_train_batches=6", "callbacks.requeue.check_every_n_steps=6"),
            "logger=csv", "trainer.max_epochs=12", "test=false", "sweep_name=requeue", "seed=7,7"]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "requeue"
    launcher = subprocess.Popen([str(BIN / "rsn-train"), *args], cwd=tmp_path, env=user_env(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not (sweep / "0" / "checkpoints" / "last.ckpt").is_file():
        assert launcher.poll() is None and time.monotonic() < deadline, "the sweep ended before the requeue"
        time.sleep(0.2)
    (array_job,) = {Path(p).name.split("_")[0] for p in glob.glob(str(sweep / ".submitit" / "*_0"))}
    subprocess.run(["scontrol", "requeue", f"{array_job}_0"], check=True, capture_output=True, timeout=60)
    output, _ = launcher.communicate(timeout=900)
    assert launcher.returncode == 0, output[-4000:]
    assert "Sweep summary (2 jobs, 0 failed)" in output
    log = (sweep / "0" / "train.log").read_text()
    stopped = re.search(r"stopped by SIGTERM at step (\d+)", log)
    assert stopped and 6 <= int(stopped[1]) < 72 and int(stopped[1]) % 6 == 0, log[-3000:]
    assert "SLURM requeued this job (restart 1): resuming from" in log
    # the controller's record (kept MinJobAge seconds after the end; accounting may lag behind it)
    job = subprocess.run(["scontrol", "show", "job", f"{array_job}_0"], capture_output=True, text=True,
                         check=True).stdout
    assert "Restarts=1" in job, job  # its state may still be RUNNING while its last task exits
    slurm_logs = "".join(Path(p).read_text() for p in glob.glob(str(sweep / ".submitit" / "*_0" / "*.err")))
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in slurm_logs  # SLURM's stderr, task 1
    metrics = (sweep / "0" / "csv" / "metrics.csv").read_text()  # the resumed start continues the same log
    assert metrics.count("\n") > 1
    a, b = (torch.load(sweep / job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
            for job in "01")
    assert a["global_step"] == b["global_step"] == 72
    for name, tensor in b["state_dict"].items():
        assert torch.equal(a["state_dict"][name], tensor), name
