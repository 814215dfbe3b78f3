"""How one rsn-train job of a sweep runs on a machine or a cluster.

- :func:`relaunch_ranks_as_this_job`: under DDP, Lightning starts the other ranks by re-running the
  command line; inside a multirun that line is the whole sweep (``-m a=1,2``), so it is rewritten to
  this job's own overrides and folder.
- :func:`share_machine`: jobs run side by side by the joblib launcher split the CPU threads, and on a
  GPU machine take disjoint GPUs.
- :func:`requeued_checkpoint`: a SLURM job requeued after pre-emption or its time limit resumes from the
  newest checkpoint in its own folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


def hydra_config():
    """The running Hydra app's ``hydra`` config, or None outside one."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun(hydra_cfg) -> bool:
    from hydra.types import RunMode

    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_ENV_BEFORE_FIRST_JOB: dict | None = None


def relaunch_ranks_as_this_job(resume_from: str | None = None) -> None:
    """Make Lightning's DDP re-launch of the other ranks run this job, not the sweep: Lightning re-runs
    ``sys.argv`` (inside a multirun: ``-m`` and every swept value, which would start the whole sweep again
    in each rank) with ``hydra.run.dir`` (a multirun job lives in the sweep's folder, not there). So the
    command line becomes this job's own overrides, in run mode, and the run folder this job's folder;
    ``resume_from``: the checkpoint this job resumes from in a resumed sweep, which the other ranks (in run
    mode, they do not look for it) are given as ``ckpt_path``."""
    hydra_cfg = hydra_config()
    if not is_multirun(hydra_cfg):
        return
    # Lightning leaves the previous job's process group and rank variables (LOCAL_RANK, ...) in this
    # process, which would make the next job of the sweep talk to the previous job's (gone) ranks
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    global _ENV_BEFORE_FIRST_JOB
    if _ENV_BEFORE_FIRST_JOB is None:
        _ENV_BEFORE_FIRST_JOB = {k: os.environ.get(k) for k in _LAUNCH_ENV}
    for key, value in _ENV_BEFORE_FIRST_JOB.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, "hydra.mode=RUN",
                *([f"ckpt_path={resume_from}"] if resume_from else [])]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def share_machine(cfg: DictConfig):
    """Jobs that the joblib launcher runs side by side (``hydra.launcher.n_jobs`` at once) share the
    machine: each sets torch to cores / n_jobs threads, and a GPU job takes the GPU of the first free slot
    (slot k: GPU k), held with a file lock in the sweep folder until the job ends. One device per job:
    Lightning starts the ranks of a multi-device job by re-running the command line, which a joblib worker
    process does not have. Returns the open lock file (None when nothing is shared)."""
    import torch

    hydra_cfg = hydra_config()
    launcher = hydra_cfg.launcher if hydra_cfg is not None else {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    devices = cfg.trainer.get("devices")
    if devices != 1:
        raise ValueError(f"trainer.devices={devices}: jobs run by hydra/launcher=joblib use one device each "
                         "(e.g. trainer=gpu); multi-device (DDP) jobs run with the default launcher or "
                         "hydra/launcher=slurm")
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    n_jobs = cores if n_jobs < 0 else max(1, n_jobs)
    torch.set_num_threads(max(1, cores // n_jobs))
    uses_gpu = str(cfg.trainer.get("accelerator")) in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if n_jobs == 1 or not uses_gpu:
        log.info("joblib job: %d torch threads", torch.get_num_threads())
        return None
    if n_jobs > torch.cuda.device_count():
        raise ValueError(f"hydra.launcher.n_jobs={n_jobs} GPU jobs at once need {n_jobs} GPUs; this machine has "
                         f"{torch.cuda.device_count()}")
    slot, lock = take_slot(Path(hydra_cfg.sweep.dir) / ".gpu_slots", n_jobs)
    with open_dict(cfg):
        cfg.trainer.devices = [slot]
    log.info("joblib job: GPU %d, %d torch threads", slot, torch.get_num_threads())
    return lock


def take_slot(folder: Path, slots: int, wait_s: float = 600.0):
    """The first of ``slots`` slots that no other process holds: (slot, open lock file). The lock is an
    advisory ``flock``, released when the file is closed or the process dies."""
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(slots):
            handle = (folder / f"{slot}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return slot, handle
            except BlockingIOError:
                handle.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free slot among {slots} in {folder} after {wait_s:.0f} s")
        time.sleep(1.0)


def requeued_checkpoint(output_dir) -> str | None:
    """After SLURM requeued this job (pre-emption, or submitit's requeue before the time limit), the
    newest checkpoint in the job's folder (Lightning's ``hpc_ckpt_*.ckpt`` or ``checkpoints/last.ckpt``)
    to resume from; None on a first start."""
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1:
        return None
    folder = Path(output_dir)
    found = [*folder.glob("hpc_ckpt_*.ckpt"), *(folder / "checkpoints").glob("last*.ckpt")]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    log.info("SLURM requeued this job (restart %s): resuming from %s", os.environ["SLURM_RESTART_COUNT"], newest)
    return str(newest)
