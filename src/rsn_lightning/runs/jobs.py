"""The record of one job (an rsn-train or rsn-eval run, alone or as part of a sweep): ``job_result.json`` in
the job's folder, written at the job's end also when the job fails (the sweep's summary keeps the error),
and read back when a resumed sweep starts the same job again.

:class:`JobRecord` is plain bookkeeping: the training layer (``training/job_record.py``) fills it in from the
config, Hydra and the Trainer, and decides when a job is done, failed, stopped or requeued.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from rsn_lightning.runs.sweeps import JOB_RESULT

log = logging.getLogger(__name__)


def finite(value) -> float | None:
    """JSON has no NaN: a metric that is not a number (e.g. the OKS of a joint nobody matched) is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def metric_names(monitor: str) -> list[str]:
    """The metrics a job's record keeps: PCKh for an MPII monitor, else COCO's AP and AR."""
    return ["PCKh"] if monitor.endswith("PCKh") else ["AP", "AR"]


class JobRecord:
    """What ``job_result.json`` says of one job, and the earlier record of the same job in a resumed sweep.

    ``overrides``: the job's Hydra task overrides; ``multirun``: the job is one of a sweep's (only those are
    skipped or resumed); ``model``: the model config's name; ``input_size``: (width, height)."""

    def __init__(self, output_dir, monitor: str = "val/AP", overrides=(), multirun: bool = False,
                 model: str = "", input_size=(0, 0)) -> None:
        self.started = time.monotonic()
        self.output_dir = Path(output_dir)
        self.monitor = monitor
        self.multirun = multirun
        self.overrides = list(overrides)
        self.result = {"status": "failed", "error": None, "overrides": self.overrides, "model": model,
                       "input_size": [int(v) for v in input_size], "num_stages": None, "width_mult": None,
                       "prm": None, "params_m": None, "gflops": None, "final": {}, "best": {},
                       "images_per_s": None, "wall_time_s": None, "output_dir": str(self.output_dir),
                       "checkpoint": None}
        self.earlier = self._earlier_result() if self.multirun else None
        self.skipped = False

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
        """The job's final evaluation (``val/*`` metrics) and the checkpoint it evaluated: status ok."""
        self.result["final"] = {k.split("/", 1)[1]: finite(v) for k, v in metrics.items() if k.startswith("val/")}
        self.result["checkpoint"] = checkpoint or None
        self.result["status"] = "ok"

    def stopped(self, saved: tuple[int, str] | None) -> None:
        """Stopped by SIGTERM; ``saved``: (step, checkpoint) when the training state was saved first."""
        self.result["status"] = "stopped"
        self.result["checkpoint"] = saved[1] if saved else None
        self.result["error"] = (f"stopped by SIGTERM at step {saved[0]}, {saved[1]} saved" if saved else
                                "stopped by SIGTERM (outside training: nothing saved)")

    def requeued(self, checkpoint: str, step: int) -> None:
        """Stopped at SLURM's time-limit warning with ``checkpoint`` saved at ``step``, for a requeue."""
        self.result["status"] = "requeued"
        self.result["checkpoint"] = checkpoint
        self.result["requeued_at_step"] = step

    def failed(self, error: str) -> None:
        self.result["status"] = "failed"
        self.result["error"] = error

    def finish(self, model: dict, best: dict, images_per_s: float | None) -> None:
        """What the job's end adds: the network's size (``model``), the best validation, the throughput and
        the wall time; final metrics the job never reached are null."""
        self.result.update(model)
        self.result["best"] = best
        for name in metric_names(self.monitor):
            self.result["final"].setdefault(name, None)
        self.result["images_per_s"] = images_per_s
        self.result["wall_time_s"] = round(time.monotonic() - self.started, 2)

    def write(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / JOB_RESULT).write_text(json.dumps(self.result, indent=2) + "\n")
