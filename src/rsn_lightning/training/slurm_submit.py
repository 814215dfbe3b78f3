"""What a ``hydra/launcher=slurm`` sweep's jobs ask SLURM for, and what to tell a user when SLURM refuses it.

:func:`slurm_count` sizes the jobs (``conf/hydra/launcher/slurm.yaml``: tasks and GPUs per node from the
trainer).

``conf/hydra/launcher/slurm.yaml`` holds defaults (time limit, memory, GPUs, partition), not a given cluster's
limits. When ``sbatch`` refuses them, submitit raises ``FailedJobError`` with sbatch's stderr and Hydra
prints it as a traceback; the launcher (``hydra_plugins/rsn_lightning_launchers``) turns it into the message
built here: sbatch's words, what the jobs asked for, and the ``hydra.launcher.*`` key to change. Nothing was
submitted, so nothing is lost: the same command with the key changed submits the whole sweep.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import ListConfig

# sbatch's error text (slurm-wlm 22.05; matched case-insensitively) -> the keys that set what it refused
_REFUSALS = (
    ("invalid generic resource", "the jobs ask for GPUs (gres) that the partition does not have: set "
     "hydra.launcher.partition=<a partition with GPUs>, or on a cluster without GPUs hydra/launcher=slurm_cpu "
     "trainer=ddp_cpu"),
    ("time limit", "the time limit is over the partition's: lower hydra.launcher.timeout_min (minutes)"),
    ("memory specification", "the memory per node is more than a node has: lower hydra.launcher.mem_gb (GB per node)"),
    ("invalid partition", "no such partition: set hydra.launcher.partition=<one that `sinfo` lists>, or null "
     "for the cluster's default"),
    ("invalid account", "the account is unknown: set hydra.launcher.account=<yours>"),
    ("processors", "more CPUs than a node has: lower hydra.launcher.cpus_per_task (CPUs per task; "
     "tasks per node = trainer.devices)"),
    ("node configuration is not available", "no node has what one job asks for (CPUs x tasks, memory, GPUs): "
     "lower hydra.launcher.cpus_per_task, hydra.launcher.mem_gb or trainer.devices"),
)
# sbatch without a reachable slurmctld (no slurm.conf, no DNS SRV record, controller down): not a refusal
_NO_CONTROLLER = ("could not establish a configuration source", "unable to contact slurm controller")
_ASKED = ("partition", "nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min")


def slurm_count(value, key: str) -> int:
    """``${slurm_count:${trainer.devices},trainer.devices}``: a SLURM job is sized by a number; Lightning's
    ``-1``/``auto`` (all devices of the machine) cannot size one, so they are refused with what to set."""
    if isinstance(value, ListConfig | list | tuple):
        return len(value)
    if isinstance(value, int) and value >= 1 or str(value).isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"hydra/launcher=slurm needs a number per node, not {key}={value} (all devices of a machine): "
                     f"set {key}=<GPUs per node>, e.g. {key}=8")


def refusal_message(sbatch_stderr: str, params: Mapping) -> str:
    """The user-facing text for a sweep whose submission sbatch refused (``params``: hydra.launcher)."""
    said = [line.strip() for line in str(sbatch_stderr).strip().splitlines() if line.strip()] or ["(nothing)"]
    text = " ".join(said).lower()
    if any(pattern in text for pattern in _NO_CONTROLLER):
        return ("sbatch could not reach a SLURM controller, so no job was submitted:\n"
                + "\n".join(f"    {line}" for line in said)
                + "\n  run the command on your cluster's login node (`sinfo` answers there), or drop "
                "hydra/launcher=slurm to run the sweep here")
    hints = [hint for pattern, hint in _REFUSALS if pattern in text]
    asked = ", ".join(f"{key}={_shown(params.get(key))}" for key in _ASKED if key in params)
    return "\n".join([
        "SLURM refused the sweep's jobs, so none was submitted. sbatch said:",
        *(f"    {line}" for line in said),
        f"  the jobs asked for (hydra.launcher.*): {asked}",
        *(f"  {hint}" for hint in hints or ["set the hydra.launcher.* key that sbatch names to your cluster's "
                                             "limit"]),
        "  `sinfo -o \"%P %l %m %c %G\"` lists each partition's time limit, memory per node (MB), CPUs per node "
        "and GPUs (gres); docs/clusters.md: site limits",
    ])


def _shown(value) -> str:
    return "null (the cluster's default)" if value is None else str(value)


def no_slurm_message(error: Exception) -> str:
    """The user-facing text for ``hydra/launcher=slurm`` on a machine without SLURM's commands."""
    return (f"hydra/launcher=slurm submits with SLURM's sbatch and srun, which this machine does not have "
            f"({error}): run the command on your cluster's login node, or drop hydra/launcher=slurm to run the "
            "sweep here")
