"""Stop a SLURM job at its time-limit warning with its progress saved, and have it requeued exactly once.

SLURM (``--signal``) warns a job ``signal_delay_s`` before its time limit: submitit, which runs
``hydra/launcher=slurm`` jobs, asks for SIGUSR2 (``SUBMITIT_PREEMPT_SIGNAL``); a hand-written sbatch script
for Lightning's own SLURM requeue uses SIGUSR1. Both are handled here:

- The signal handler only records the signal (a handler runs between two bytecodes of whatever the main
  thread is doing, mid-step; saving there is unsafe).
- :class:`RequeueOnSignal` (a callback) looks at it after a training step: every rank agrees to stop at the
  same step, ``last.ckpt`` is written through ``trainer.save_checkpoint`` (the strategy writes on rank 0,
  through the trainer's checkpoint plugin: ``AtomicCheckpointIO``), and :class:`RequeueRequested` ends
  ``trainer.fit``. Raising, not ``trainer.should_stop``: a stop request makes Lightning run a full
  validation first (``_should_check_val_fx``), which can outlast the warning, and ModelCheckpoint then
  writes last.ckpt again with the epoch counted as completed (seen with Lightning 2.6: a stop at step 3 of
  8 left ``epoch_progress.completed == 1``), so the resumed job would skip the rest of the epoch.
- :func:`requeue` (called by ``TrainingJobRecord`` once ``job_result.json`` and the wandb run are closed) requeues
  once: when a handler was installed before ours (submitit's ``SignalHandler.checkpoint_and_try_requeue``)
  it is called, and it does what it always did: dump its job for the next start (counting
  ``max_num_timeout``), ``scontrol requeue`` on rank 0, then ``sys.exit(-1)`` so no result is recorded for
  this start. Otherwise (no submitit) ``scontrol requeue <job id>`` is run on rank 0; without a SLURM job
  nothing requeues the job, and ``ckpt_path=last`` resumes it by hand.

A signal that arrives while no training listens (data setup, the final evaluation) goes to the handler that
was there before, as if this module were not installed.

SIGTERM (SLURM's pre-emption, ``scontrol requeue``, ``scancel``, a plain ``kill``): in one process it is
Lightning's, which raises ``SIGTERMException`` after the current step, and :class:`RequeueOnSignal` writes
``last.ckpt`` (in ``on_exception``) before the exception ends the fit; under DDP it is flagged like the
time-limit warning (Lightning's own handling can leave the ranks in different steps), the ranks stop at the
step they agree on (every ``check_every_n_steps``, which must take well under the cluster's ``KillWait``),
``last.ckpt`` is written there and ``SIGTERMException`` raised. Either way ``TrainingJobRecord`` records the job as
``stopped`` with that checkpoint and ends the process with status 143: the same command resumes it (a
requeued SLURM job, a resumed sweep; ``ckpt_path=last`` in a single run). SIGINT (Ctrl-C) stays Lightning's
graceful shutdown with no checkpoint: it can arrive mid-step.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

DEFAULT_REQUEUE_COMMAND = ("scontrol", "requeue", "{job_id}")


class RequeueRequested(BaseException):
    """Ends ``trainer.fit`` after the requeue checkpoint is saved. A BaseException, like SystemExit: it is not
    an error, and ``except Exception`` handlers (a sweep recording failed jobs) must not report it as one."""

    def __init__(self, signum: int, checkpoint: str, step: int, requeue_command) -> None:
        super().__init__(f"{signal.Signals(signum).name} at step {step}: saved {checkpoint}, stopping for a requeue")
        self.signum, self.checkpoint, self.step = signum, checkpoint, step
        self.requeue_command = tuple(requeue_command)


class _SignalState:
    def __init__(self) -> None:
        self.previous: dict[int, object] = {}  # the handler each signal had before ours
        self.received: int | None = None
        self.listening = 0  # trainers fitting with a RequeueOnSignal
        self.saved_at_sigterm: tuple[int, str] | None = None  # (step, checkpoint) written at Lightning's SIGTERM


_STATE = _SignalState()


def _on_signal(signum, frame) -> None:
    if _STATE.listening:
        log.warning("%s received: saving a checkpoint after this training step, then stopping for a requeue",
                    signal.Signals(signum).name)
        _STATE.received = signum
    else:
        _forward(signum, frame)


def _forward(signum, frame) -> None:
    previous = _STATE.previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action of SIGUSR1/2: end the process
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def signal_number(name) -> int:
    """``"SIGUSR2"``, ``"USR2"`` or a number."""
    if isinstance(name, int):
        return int(name)
    text = str(name).upper()
    found = getattr(signal, text if text.startswith("SIG") else f"SIG{text}", None)
    if not isinstance(found, signal.Signals):
        raise ValueError(f"unknown signal {name!r} in callbacks.requeue.signals: use e.g. [SIGUSR1, SIGUSR2]")
    return int(found)


def install(signals) -> bool:
    """Route ``signals`` to the requeue flag (idempotent; the previous handlers are kept to forward to).
    False when not in the main thread, where Python cannot set handlers."""
    if threading.current_thread() is not threading.main_thread():
        log.warning("requeue signals not handled: training does not run in the main thread")
        return False
    for signum in map(signal_number, signals):
        current = signal.getsignal(signum)
        if current is not _on_signal:
            _STATE.previous[signum] = current
            signal.signal(signum, _on_signal)
    return True


def uninstall() -> None:
    """Give the signals back to the handlers they had before :func:`install`."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in _STATE.previous.items():
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _STATE.previous.clear()


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else SLURM_JOB_ID."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def requeue(request: RequeueRequested) -> str:
    """Requeue the job once (call it on global rank 0 only); returns who requeued it. Submitit's handler
    exits the process (SystemExit) after requeueing, or raises its UncompletedJobError when the job timed
    out ``max_num_timeout`` times."""
    previous = _STATE.previous.get(request.signum)
    if not callable(previous):  # rank 0 saw the other signal, or none (another rank's stopped all)
        previous = next((h for h in _STATE.previous.values() if callable(h)), None)
    if previous is not None:
        name = getattr(previous, "__qualname__", repr(previous))
        log.info("requeue left to the handler installed before training (%s)", name)
        previous(request.signum, None)
        return name
    job_id = slurm_job_id()
    if job_id is None:
        log.warning("stopped at %s without a SLURM job (no SLURM_JOB_ID): nothing requeues it; resume with "
                    "ckpt_path=last in the same folder", signal.Signals(request.signum).name)
        return "nobody"
    command = [part.format(job_id=job_id) for part in request.requeue_command]
    log.info("requeueing SLURM job %s: %s", job_id, " ".join(command))
    subprocess.run(command, check=True, timeout=60)
    return " ".join(command)


class RequeueOnSignal(pl.Callback):
    """At SLURM's time-limit warning (any of ``signals``): save ``dirpath/filename`` after the current training
    step and stop with :class:`RequeueRequested` (see the module's doc). With several processes the ranks
    agree every ``check_every_n_steps`` steps (a collective, and a host sync: not every step); alone, every
    step. ``requeue_command``: what requeues the job when submitit does not, ``{job_id}`` replaced."""

    def __init__(self, dirpath, filename: str = "last.ckpt", signals=("SIGUSR1", "SIGUSR2"),
                 check_every_n_steps: int = 1, requeue_command=DEFAULT_REQUEUE_COMMAND) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"callbacks.requeue.check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.path = Path(dirpath) / filename
        self.signals = [signal_number(s) for s in signals]
        self.check_every_n_steps = int(check_every_n_steps)
        self.requeue_command = tuple(str(part) for part in requeue_command)
        self._listening = False
        self._last_step = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before the trainer's own signal connector: it sees a handler on SIGUSR1 and leaves Lightning's SLURM
        # auto-requeue (a second checkpoint and a second `scontrol requeue`) out
        if stage == "fit":
            install(self.signals)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _STATE.received = None
        _STATE.saved_at_sigterm = None
        if trainer.world_size > 1 and hasattr(signal, "SIGTERM"):
            # Lightning's SIGTERM handler broadcasts from rank 0 inside the handler, mid-step, and the other
            # ranks stop at their next step's start while rank 0 finishes its step: DDP's gradient all-reduce
            # then waits forever (seen on SLURM, which signals every task). Under DDP SIGTERM is flagged
            # here instead, and the ranks stop at the step they agree on, as at the time-limit warning.
            signal.signal(signal.SIGTERM, _on_signal)
        _STATE.listening += 1
        self._listening = True
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return  # no optimizer step since the last look (gradient accumulation): the state is mid-step
        self._last_step = step
        if trainer.world_size > 1 and step % self.check_every_n_steps:
            return
        received = _STATE.received is not None
        if trainer.world_size > 1:  # a rank may have had the signal a moment later: any rank's signal stops all
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        signum = _STATE.received or self.signals[0]
        trainer.save_checkpoint(self.path, weights_only=False)  # everything a resume needs
        self._stop_listening()
        if signum == getattr(signal, "SIGTERM", None):  # under DDP (see on_train_start): stop, not requeue
            _STATE.saved_at_sigterm = (step, str(self.path))
            log.warning("SIGTERM: saved %s at step %d", self.path, step)
            raise SIGTERMException
        raise RequeueRequested(signum, str(self.path), step, self.requeue_command)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_listening()  # training is over: a late signal goes to the previous handler

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        listening = self._listening
        self._stop_listening()
        # one process: Lightning raises it after a whole step, so the state saved here is consistent (under DDP
        # the stop was agreed on in on_train_batch_end, which saved already)
        if (isinstance(exception, SIGTERMException) and listening and trainer.training
                and _STATE.saved_at_sigterm is None):
            trainer.save_checkpoint(self.path, weights_only=False)
            _STATE.saved_at_sigterm = (trainer.global_step, str(self.path))
            log.warning("SIGTERM: saved %s at step %d", self.path, trainer.global_step)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._stop_listening()

    def _stop_listening(self) -> None:
        if self._listening:
            self._listening = False
            _STATE.listening -= 1


def saved_at_sigterm() -> tuple[int, str] | None:
    """(step, checkpoint) when the last fit of this process ended at SIGTERM with its state saved."""
    return _STATE.saved_at_sigterm
