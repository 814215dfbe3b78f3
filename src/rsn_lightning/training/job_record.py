"""The record of one rsn-train or rsn-eval job as the job runs it: a :class:`~rsn_lightning.runs.jobs.JobRecord`
filled in from the config, Hydra and the Trainer, as a context manager around the job.

- It writes ``job_result.json`` into the job folder at the job's end, also when the job fails (the
  sweep's summary keeps the error), and finishes the job's wandb run either way, so the next job of a
  multirun starts a run of its own. In a multirun a failed job does not stop the sweep: the error is
  logged and recorded, the remaining jobs run, and the summary says which failed.
- A job stopped at SLURM's time-limit warning (training/requeue.py: last.ckpt saved, RequeueRequested) is
  recorded as ``requeued``, its wandb run finished with exit code 0, and then requeued once.
- A job stopped by SIGTERM is recorded as ``stopped`` and ends with status 143: the same command resumes it.
"""

from __future__ import annotations

import logging
import signal
import traceback

from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from rsn_lightning.runs.jobs import JobRecord
from rsn_lightning.training.job_callbacks import TrainingRecord
from rsn_lightning.training.launch import hydra_config, is_multirun, share_machine
from rsn_lightning.training.loggers import finish_wandb
from rsn_lightning.training.requeue import RequeueRequested, requeue, saved_at_sigterm
from rsn_lightning.training.requeue import uninstall as uninstall_requeue_handlers

log = logging.getLogger(__name__)


class TrainingJobRecord(JobRecord):
    """``with TrainingJobRecord(cfg) as record:`` around one job; ``record.callback`` goes to the Trainer and
    ``record.done(metrics, checkpoint)`` is called when the job has its final evaluation."""

    def __init__(self, cfg: DictConfig) -> None:
        hydra_cfg = hydra_config()
        choices = hydra_cfg.runtime.choices if hydra_cfg is not None else {}
        input_size = list(cfg.data.input_size) if cfg.get("data") and cfg.data.get("input_size") else [0, 0]
        super().__init__(cfg.paths.output_dir, monitor=str(cfg.get("monitor") or "val/AP"),
                         overrides=list(hydra_cfg.overrides.task) if hydra_cfg is not None else [],
                         multirun=is_multirun(hydra_cfg),
                         model=choices.get("model") or str(cfg.model.net.get("name", "")), input_size=input_size)
        self.callback = TrainingRecord(self.monitor, input_size)
        self._slot = None

    def __enter__(self) -> TrainingJobRecord:
        return self

    def share_machine(self, cfg: DictConfig) -> None:
        """Joblib jobs side by side: this job's share of threads and GPUs (``launch.share_machine``), held
        until the job ends."""
        self._slot = share_machine(cfg)

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
            self.stopped(saved_at_sigterm())
        requeued = isinstance(exc, RequeueRequested)
        if requeued:
            # stopped at SLURM's time-limit warning with last.ckpt saved: not a failure; the requeued start
            # resumes from it (requeued_checkpoint) in this folder and rewrites this record
            self.requeued(exc.checkpoint, exc.step)
        failed = exc is not None and not requeued and not terminated
        if failed:
            self.failed("".join(traceback.format_exception_only(exc_type, exc)).strip())
        self.finish(self.callback.model, self.callback.best_summary(), self.callback.throughput)
        if rank_zero_only.rank == 0:
            self.write()
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

    def _requeue(self, request: RequeueRequested) -> None:
        """After the record and the wandb run are closed (``scontrol requeue`` ends this start soon): requeue
        once, on rank 0. Submitit's handler exits the process (SystemExit) once it has requeued; when it
        refuses (timed out ``max_num_timeout`` times) the record says so and its error ends the job."""
        try:
            if rank_zero_only.rank == 0:
                requeue(request)
        except Exception as e:
            self.failed(f"stopped at the time-limit signal but not requeued: {e}")
            self.write()
            raise
        finally:
            uninstall_requeue_handlers()
