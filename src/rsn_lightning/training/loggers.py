"""Logger factories for Hydra configs."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_server_unreachable(timeout_s: float) -> str | None:
    """Why the wandb server cannot be reached within ``timeout_s`` (None when it answers at all, even
    with an HTTP error). wandb itself retries a dead network for minutes before giving up."""
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as e:  # URLError, refused, DNS, timeout, malformed URL
        return f"{url}: {getattr(e, 'reason', e)}"
    return None


_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def is_global_rank_zero_from_env() -> bool:
    """Whether this process is global rank 0, before any Trainer exists, from the variables the launchers set:
    torchrun (RANK, LOCAL_RANK, GROUP_RANK), SLURM tasks (SLURM_PROCID), Lightning's re-launch of the other
    ranks (LOCAL_RANK, NODE_RANK; SLURM_PROCID is then inherited from the first process, so every variable
    present must be 0). No variable: one process, rank 0."""
    return all(int(os.environ.get(key) or 0) == 0 for key in _RANK_VARIABLES)


def wandb_logger(save_dir: str, offline: bool | None = None, id: str | None = None, name: str | None = None,
                 group: str | None = None, tags=(), job_type: str | None = None, checkpoint: str | None = None,
                 connect_timeout_s: float = 10.0, **kwargs):
    """A WandbLogger for one Hydra job.

    - Offline when no API key is configured (no network surprise); with a key but no answer from the
      server within ``connect_timeout_s``, offline too, with a warning saying how to sync later. Only global
      rank 0 asks the server (the run is rank 0's).
    - The run id derives from the output folder, so a job resumed in the same folder (``ckpt_path=last``,
      a SLURM requeue) continues the same wandb run.
    - ``name``/``group`` left null: the job's swept values (``num_stages=2,width_mult=0.5``) or the
      experiment's name, and the sweep folder's name, so the jobs of a sweep sit side by side in one
      group. An ``eval`` run of a sweep job's ``checkpoint`` takes that job's name and group.
    - Tags: the config's ``tags`` plus the experiment and the swept values.
    """
    from pytorch_lightning.loggers import WandbLogger

    from rsn_lightning.runs.sweeps import job_folder_of, job_identity

    if offline is None:
        offline = not _wandb_has_key()
    # the probe on global rank 0 only: the other ranks never start a run (WandbLogger's experiment is rank-zero
    # only), so their online/offline setting is never used, and on a node without internet each would wait
    # connect_timeout_s
    if not offline and is_global_rank_zero_from_env() and (reason := wandb_server_unreachable(connect_timeout_s)):
        log.warning("wandb: no answer from the server within %.0f s (%s): logging OFFLINE to %s/wandb; upload "
                    "later with `wandb sync %s/wandb/offline-run-*`", connect_timeout_s, reason, save_dir, save_dir)
        offline = True
    source = job_folder_of(checkpoint) if job_type == "eval" and checkpoint else None
    identity = job_identity(source or save_dir) if (source or job_folder_of(save_dir)) else {}
    tags = list(dict.fromkeys([*(tags or []), *identity.get("tags", [])]))
    run_id = id or hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(save_dir=save_dir, offline=offline, id=run_id, resume="allow",
                       name=name or identity.get("name"), group=group or identity.get("group"),
                       tags=[t[:64] for t in tags], job_type=job_type, **kwargs)


def finish_wandb(summary: dict | None = None, failed: bool = False) -> None:
    """End this process's wandb run (if one is open), so that the next job of a multirun starts its own
    run instead of logging into this one; ``summary`` goes into the run's summary first."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb else None
    if run is None:
        return
    if summary:
        run.summary.update({k: v for k, v in summary.items() if v is not None})
    wandb.finish(exit_code=1 if failed else 0)
