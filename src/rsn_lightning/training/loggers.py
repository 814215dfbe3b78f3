"""Logger factories for Hydra configs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_logger(save_dir: str, offline: bool | None = None, id: str | None = None, **kwargs):
    """A WandbLogger that runs offline when no API key is configured (no network surprise), and whose
    run id is derived from the output folder, so a job resumed in the same folder (``ckpt_path=last``)
    continues the same wandb run."""
    from pytorch_lightning.loggers import WandbLogger

    if offline is None:
        offline = not _wandb_has_key()
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
    run_id = id or hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:16]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(save_dir=save_dir, offline=offline, id=run_id, resume="allow", **kwargs)
