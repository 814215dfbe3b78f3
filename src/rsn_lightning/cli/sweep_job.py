"""One rsn-train job as part of a sweep: what it records, how it shares a machine or a cluster.

- :class:`JobRecord` writes ``job_result.json`` into the job folder at the job's end, also when the job
  fails (the sweep's summary keeps the error), and finishes the job's wandb run either way, so the next
  job of a multirun starts a run of its own. In a multirun a failed job does not stop the sweep: the
  error is logged and recorded, the remaining jobs run, and the summary says which failed.
- :func:`relaunch_ranks_as_this_job`: under DDP, Lightning starts the other ranks by re-running the
  command line; inside a multirun that line is the whole sweep (``-m a=1,2``), so it is rewritten to
  this job's own overrides and folder.
- :func:`share_machine`: jobs run side by side by the joblib launcher split the CPU threads, and on a
  GPU machine take disjoint GPUs.
- A job stopped at SLURM's time-limit warning (training/requeue.py: last.ckpt saved, RequeueRequested) is
  recorded as ``requeued``, its wandb run finished with exit code 0, and then requeued once.
- :func:`requeued_checkpoint`: a SLURM job requeued after pre-emption or its time limit resumes from the
  newest checkpoint in its own folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from rsn_lightning.evaluation.sweeps import JOB_RESULT
from rsn_lightning.training.loggers import finish_wandb
from rsn_lightning.training.requeue import RequeueRequested, requeue, saved_at_sigterm
from rsn_lightning.training.requeue import uninstall as uninstall_requeue_handlers

log = logging.getLogger(__name__)


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun(hydra_cfg) -> bool:
    from hydra.types import RunMode

    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def _finite(value) -> float | None:
    """JSON has no NaN: a metric that is not a number (e.g. the OKS of a joint nobody matched) is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _metric_names(monitor: str) -> list[str]:
    return ["PCKh"] if monitor.endswith("PCKh") else ["AP", "AR"]


class TrainingRecord(pl.Callback):
    """Collects, on rank zero: the network's size and multiply-adds (at ``setup``), every validation during
    training (the best by ``monitor``), and the training throughput as Lightning's ThroughputMonitor
    (conf/callbacks/throughput.yaml) last logged it: images of all devices over the training time, data
    loading included, validation excluded (None without that callback, without a logger, or when no step
    was logged: fewer steps than ``trainer.log_every_n_steps``)."""

    def __init__(self, monitor: str, input_size) -> None:
        self.monitor, self.input_size = monitor, tuple(int(v) for v in input_size)
        self.model: dict = {}
        self.best: dict | None = None
        self.throughput: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        net = getattr(pl_module, "net", None)
        if self.model or net is None or not trainer.is_global_zero:
            return
        from rsn_lightning.models.flops import complexity

        arch = net.arch_config() if hasattr(net, "arch_config") else {}
        size = complexity(net, self.input_size)
        self.model = {"num_stages": arch.get("num_stages"), "width_mult": arch.get("width_mult"),
                      "prm": arch.get("prm", arch.get("use_prm")), "params_m": round(size["mparams"], 4),
                      "gflops": round(size["gmacs"], 4)}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        metrics = {k: _finite(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        score = metrics.get(self.monitor)
        if score is not None and (self.best is None or score > self.best[self.monitor]):
            self.best = {**metrics, "epoch": trainer.current_epoch}

    def on_train_end(self, trainer, pl_module) -> None:
        # ThroughputMonitor's running totals of one device (rank zero)
        samples, seconds = trainer.logged_metrics.get("train/samples"), trainer.logged_metrics.get("train/time")
        if samples and seconds:
            self.throughput = round(float(samples) * trainer.world_size / float(seconds), 3)

    def best_summary(self) -> dict:
        names = _metric_names(self.monitor)
        best = self.best or {}
        return {**{m: best.get(f"val/{m}") for m in names}, "epoch": best.get("epoch")}


class JobRecord:
    """``with JobRecord(cfg) as record:`` around one job; ``record.callback`` goes to the Trainer and
    ``record.done(metrics, checkpoint)`` is called when the job has its final evaluation."""

    def __init__(self, cfg: DictConfig) -> None:
        self.started = time.monotonic()
        self.output_dir = Path(cfg.paths.output_dir)
        self.monitor = str(cfg.get("monitor") or "val/AP")
        hydra_cfg = _hydra()
        self.multirun = _is_multirun(hydra_cfg)
        self.overrides = list(hydra_cfg.overrides.task) if hydra_cfg is not None else []
        choices = hydra_cfg.runtime.choices if hydra_cfg is not None else {}
        input_size = list(cfg.data.input_size) if cfg.get("data") and cfg.data.get("input_size") else [0, 0]
        self.callback = TrainingRecord(self.monitor, input_size)
        self.result = {"status": "failed", "error": None, "overrides": self.overrides,
                       "model": choices.get("model") or str(cfg.model.net.get("name", "")),
                       "input_size": [int(v) for v in input_size], "num_stages": None, "width_mult": None,
                       "prm": None, "params_m": None, "gflops": None, "final": {}, "best": {},
                       "images_per_s": None, "wall_time_s": None, "output_dir": str(self.output_dir),
                       "checkpoint": None}
        self._slot = None
        self.earlier = self._earlier_result() if self.multirun else None
        self.skipped = False

    def __enter__(self) -> JobRecord:
        return self

    def _earlier_result(self) -> dict | None:
        """This job's job_result.json from an earlier start of the same sweep (SweepSummary checked that
        the sweep's swept values are the same), or None."""
        path = self.output_dir / JOB_RESULT
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(earlier, dict) and earlier.get("overrides") == self.overrides:
            return earlier
        log.warning("%s is of other overrides (%s): this job starts afresh", path, earlier.get("overrides")
                    if isinstance(earlier, dict) else "unreadable")
        return None

    def finished_before(self) -> dict | None:
        """In a resumed sweep: this job's earlier result when it finished (status ok); the job is then
        skipped and its job_result.json kept as it is."""
        if self.earlier is not None and self.earlier.get("status") == "ok":
            self.skipped = True
            log.info("job %s finished in an earlier start of this sweep (final %s): skipped", self.output_dir,
                     self.earlier.get("final"))
            return self.earlier
        return None

    def unfinished_checkpoint(self) -> str | None:
        """In a resumed sweep: the checkpoints/last.ckpt this job left when its sweep stopped (launcher
        killed, node lost: no record, or ``requeued``); None for a job that failed (it runs again from
        scratch: its error may be in the weights) or never saved one."""
        last = self.output_dir / "checkpoints" / "last.ckpt"
        if not self.multirun or not last.is_file():
            return None
        if self.earlier is not None and self.earlier.get("status") == "failed":
            log.info("job %s failed in an earlier start of this sweep (%s): it runs again from scratch",
                     self.output_dir, self.earlier.get("error"))
            return None
        log.info("job %s was unfinished in an earlier start of this sweep: resuming from %s", self.output_dir, last)
        return str(last)

    def done(self, metrics: dict, checkpoint: str | None) -> None:
        self.result["final"] = {k.split("/", 1)[1]: _finite(v) for k, v in metrics.items() if k.startswith("val/")}
        self.result["checkpoint"] = checkpoint or None
        self.result["status"] = "ok"

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._slot is not None:
            self._slot.close()  # releases the GPU slot's lock
        if self.skipped and exc is None:
            uninstall_requeue_handlers()
            return False  # its earlier job_result.json stands
        terminated = isinstance(exc, SIGTERMException)
        if terminated:
            # SIGTERM (pre-emption, scontrol requeue, scancel, kill): not a failure of the job; the same
            # command resumes it (a requeued SLURM job does so by itself)
            saved = saved_at_sigterm()
            self.result["status"] = "stopped"
            self.result["checkpoint"] = saved[1] if saved else None
            self.result["error"] = (f"stopped by SIGTERM at step {saved[0]}, {saved[1]} saved" if saved else
                                    "stopped by SIGTERM (outside training: nothing saved)")
        requeued = isinstance(exc, RequeueRequested)
        if requeued:
            # stopped at SLURM's time-limit warning with last.ckpt saved: not a failure; the requeued start
            # resumes from it (requeued_checkpoint) in this folder and rewrites this record
            self.result["status"] = "requeued"
            self.result["checkpoint"] = exc.checkpoint
            self.result["requeued_at_step"] = exc.step
        failed = exc is not None and not requeued and not terminated
        if failed:
            self.result["status"] = "failed"
            self.result["error"] = "".join(traceback.format_exception_only(exc_type, exc)).strip()
        self.result.update(self.callback.model)
        self.result["best"] = self.callback.best_summary()
        for name in _metric_names(self.monitor):
            self.result["final"].setdefault(name, None)
        self.result["images_per_s"] = self.callback.throughput
        self.result["wall_time_s"] = round(time.monotonic() - self.started, 2)
        if rank_zero_only.rank == 0:
            self._write()
            # exit code 0 when requeued: the run is not failed, and the requeued start continues it (same id)
            finish_wandb({"status": self.result["status"], "params_m": self.result["params_m"],
                          "gflops": self.result["gflops"], "images_per_s": self.result["images_per_s"],
                          **{f"best/{k}": v for k, v in self.result["best"].items()}}, failed=failed)
        if requeued:
            self._requeue(exc)
            return True
        uninstall_requeue_handlers()
        if terminated:
            log.warning("%s: the same command resumes it (a requeued SLURM job resumes by itself; a single run "
                        "with ckpt_path=last in its folder)", self.result["error"])
            raise SystemExit(128 + signal.SIGTERM) from None
        if failed and self.multirun and isinstance(exc, Exception):
            # keep the sweep going: the summary at its end lists this job as failed, with the error
            log.error("job %s failed (the sweep goes on; its summary keeps the error):\n%s", self.output_dir,
                      "".join(traceback.format_exception(exc_type, exc, tb)))
            return True
        return False

    def _write(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / JOB_RESULT).write_text(json.dumps(self.result, indent=2) + "\n")

    def _requeue(self, request: RequeueRequested) -> None:
        """After the record and the wandb run are closed (``scontrol requeue`` ends this start soon): requeue
        once, on rank 0. Submitit's handler exits the process (SystemExit) once it has requeued; when it
        refuses (timed out ``max_num_timeout`` times) the record says so and its error ends the job."""
        try:
            if rank_zero_only.rank == 0:
                requeue(request)
        except Exception as e:
            self.result["status"] = "failed"
            self.result["error"] = f"stopped at the time-limit signal but not requeued: {e}"
            self._write()
            raise
        finally:
            uninstall_requeue_handlers()

    def share_machine(self, cfg: DictConfig) -> None:
        self._slot = share_machine(cfg)


_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_ENV_BEFORE_FIRST_JOB: dict | None = None


def relaunch_ranks_as_this_job(resume_from: str | None = None) -> None:
    """Make Lightning's DDP re-launch of the other ranks run this job, not the sweep: Lightning re-runs
    ``sys.argv`` (inside a multirun: ``-m`` and every swept value, which would start the whole sweep again
    in each rank) with ``hydra.run.dir`` (a multirun job lives in the sweep's folder, not there). So the
    command line becomes this job's own overrides, in run mode, and the run folder this job's folder;
    ``resume_from``: the checkpoint this job resumes from in a resumed sweep, which the other ranks (in run
    mode, they do not look for it) are given as ``ckpt_path``."""
    hydra_cfg = _hydra()
    if not _is_multirun(hydra_cfg):
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

    hydra_cfg = _hydra()
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


def slurm_count(value, key: str) -> int:
    """``${slurm_count:${trainer.devices},trainer.devices}``: a SLURM job is sized by a number; Lightning's
    ``-1``/``auto`` (all devices of the machine) cannot size one, so they are refused with what to set."""
    if isinstance(value, ListConfig | list | tuple):
        return len(value)
    if isinstance(value, int) and value >= 1 or str(value).isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"hydra/launcher=slurm needs a number per node, not {key}={value} (all devices of a machine): "
                     f"set {key}=<GPUs per node>, e.g. {key}=8")


def sweep_folder(sweep_name, timestamp: str) -> str:
    """``${sweep_folder:${sweep_name},${now:...}}``: a named sweep's folder is its name (so that the same
    command finds it again and resumes it), an unnamed one's the time it started."""
    return str(sweep_name) if sweep_name not in (None, "") else timestamp


if not OmegaConf.has_resolver("slurm_count"):
    OmegaConf.register_new_resolver("slurm_count", slurm_count)
if not OmegaConf.has_resolver("sweep_folder"):
    OmegaConf.register_new_resolver("sweep_folder", sweep_folder)
