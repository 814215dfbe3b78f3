"""A sweep that SLURM refuses to take, through the real command on the local SLURM cluster
(scripts/local_slurm.sh): sbatch's own refusal, the key to change, exit status 2, no traceback, nothing
submitted. And the same command on a machine without SLURM's commands, and the job sizes a sweep asks for."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsn_lightning.training.slurm_submit import slurm_count

launcher_plugin = pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                                     reason="the SLURM launcher: the slurm extra")

BIN = Path(sys.executable).parent
SWEEP = ["-m", "experiment=quickstart", "trainer.max_epochs=1", "model.optimizer.lr=1e-3,2e-3"]


def rsn_train(tmp: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RSN_"))}
    env.update(NETRC=str(tmp / "no-netrc"), PATH=path or env["PATH"])
    return subprocess.run([str(BIN / "rsn-train"), *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)


def jobs_from(folder: Path) -> list[str]:
    """The SLURM jobs submitted from ``folder`` (their working directory): other tests' jobs may run too."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == [str(folder)]]


@launcher_plugin
@pytest.mark.slurm
@pytest.mark.parametrize(("overrides", "sbatch_says", "key"), [
    # the GPU launcher on a cluster whose nodes have no GPUs
    (["hydra/launcher=slurm"], "Invalid generic resource (gres) specification", "hydra/launcher=slurm_cpu"),
    (["hydra/launcher=slurm_cpu", "hydra.launcher.partition=nosuch"], "Invalid partition name specified",
     "hydra.launcher.partition"),
    # the local cluster's nodes have 2 CPUs
    (["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=8"], "More processors requested than permitted",
     "hydra.launcher.cpus_per_task"),
    # partition `short` has MaxTime=5 (minutes)
    (["hydra/launcher=slurm_cpu", "hydra.launcher.partition=short", "hydra.launcher.timeout_min=60"],
     "Requested time limit is invalid", "hydra.launcher.timeout_min"),
    (["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=100000"], "Memory specification can not be satisfied",
     "hydra.launcher.mem_gb"),
], ids=["gpus-on-cpu-nodes", "partition", "cpus", "time-limit", "memory"])
def test_a_refused_sweep_names_the_key_to_change_and_submits_nothing(slurm_cluster, tmp_path, overrides,
                                                                     sbatch_says, key):
    proc = rsn_train(tmp_path, *SWEEP, *overrides)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    message = proc.stderr[proc.stderr.index("\nerror: ") + 1:]  # after sbatch's own lines, which submitit prints
    assert message.startswith("error: SLURM refused the sweep's jobs, so none was submitted. sbatch said:")
    assert sbatch_says in message and key in message, message
    assert "the jobs asked for (hydra.launcher.*): " in message
    assert jobs_from(tmp_path) == []
    submitted = [p for p in tmp_path.glob("logs/train/multiruns/*/.submitit/*") if p.name.split("_")[0].isdigit()]
    assert submitted == []  # submitit names a submitted job's folder by its SLURM id


@launcher_plugin
def test_the_slurm_launcher_without_slurm_says_where_to_run_it(tmp_path):
    """On a workstation: no sbatch/srun on PATH (here: PATH without the folders that hold them)."""
    slurm_dirs = {Path(found).resolve().parent for found in map(shutil.which, ("srun", "sbatch")) if found}
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if Path(d).resolve() not in slurm_dirs)
    assert shutil.which("srun", path=path) is None and shutil.which("sbatch", path=path) is None
    proc = rsn_train(tmp_path, *SWEEP, "hydra/launcher=slurm", path=path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert ("error: hydra/launcher=slurm submits with SLURM's sbatch and srun, which this machine does not have "
            "(Could not detect \"srun\", are you indeed on a slurm cluster?): run the command on your cluster's "
            "login node") in proc.stderr


def test_slurm_sizes_are_numbers():
    assert slurm_count(4, "trainer.devices") == 4
    assert slurm_count([0, 1], "trainer.devices") == 2
    for bad in (-1, "auto", 0):
        with pytest.raises(ValueError, match="set trainer.devices=<GPUs per node>"):
            slurm_count(bad, "trainer.devices")
