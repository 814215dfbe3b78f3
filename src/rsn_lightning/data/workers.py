"""Seeding of the data pipeline's processes: each loader worker (one compute thread; numpy, ``random`` and
the dataset's transform from the worker seed torch hands it, mixed with the global rank) and the main
process when there are no workers.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info


def global_rank() -> int:
    """This process's global rank as Lightning records it (0 outside DDP)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one compute thread per worker, then seed numpy, random and the
    dataset's transform per worker.

    The workers are the data pipeline's parallelism. Left alone, OpenCV (the decode, warpAffine, LUT and
    colour conversions of every sample) starts its own pool of one thread per core in each worker: with
    8 DDP ranks x 4-8 workers on a node that is 32-64 pools of as many threads as the node has cores,
    contending with each other and with the training processes. ``cv2.setNumThreads(0)`` runs OpenCV's
    functions sequentially in the calling thread (OpenCV's documentation of setNumThreads; getNumThreads
    then reports 1). PyTorch's worker loop already sets one torch thread per worker before calling this
    (torch/utils/data/_utils/worker.py); it is set again here so that it holds whatever the torch version.
    """
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    info = get_worker_info()
    seed = int(info.seed if info is not None else torch.initial_seed()) % (2**63)
    ss = np.random.SeedSequence([seed, global_rank()])
    # legacy global state on purpose: user code and third-party augmentations draw from it
    np.random.seed(ss.generate_state(1)[0])  # noqa: NPY002
    random.seed(int(ss.generate_state(2, np.uint64)[1]))
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(int(ss.generate_state(1, np.uint64)[0]))


def seed_main_process(ds) -> None:
    """Reseed the dataset's transform in the main process, for ``num_workers == 0`` (workers reseed themselves)."""
    ss = np.random.SeedSequence([torch.initial_seed() % (2**63), global_rank()])
    ds.reseed(int(ss.generate_state(1)[0]))
