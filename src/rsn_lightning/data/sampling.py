"""Training order and augmentation seeds that a checkpoint can restore mid-epoch.

:class:`EpochSeededSampler` shuffles like ``RandomSampler`` and hands every sample of the epoch its own
augmentation seed, both drawn from one ``torch.Generator`` when the epoch starts. A sample's crop,
scale, rotation and colour jitter are then a function of (epoch start state, position) only: the
same with 0, 1 or 8 loader workers, and reproducible from a checkpoint that records the epoch's
start state and how many batches were trained (:meth:`EpochSeededSampler.resume_at`).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

SEED_BOUND = 2**62


class EpochSeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a permutation of ``range(num_samples)`` (or the identity with
    ``shuffle=False``) and one seed per position, drawn from ``generator`` at the start of each epoch."""

    def __init__(self, num_samples: int, generator: torch.Generator, shuffle: bool = True):
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.num_samples = int(num_samples)
        self.generator = generator
        self.shuffle = shuffle
        self.epoch_start_state: torch.Tensor | None = None  # generator state before this epoch's draws
        self._resume: tuple[torch.Tensor, int] | None = None

    def __len__(self) -> int:
        return self.num_samples

    def resume_at(self, epoch_start_state: torch.Tensor, samples_done: int) -> None:
        """Make the next epoch the interrupted one: redraw its order and seeds from its start state and
        skip the first ``samples_done`` samples (the batches already trained)."""
        if not 0 <= samples_done <= self.num_samples:
            raise ValueError(f"cannot resume {samples_done} samples into an epoch of {self.num_samples}")
        self._resume = (epoch_start_state.clone(), int(samples_done))

    def __iter__(self):
        skip = 0
        if self._resume is not None:
            state, skip = self._resume
            self._resume = None
            self.generator.set_state(state)
        self.epoch_start_state = self.generator.get_state()
        n = self.num_samples
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        seeds = torch.randint(0, SEED_BOUND, (n,), generator=self.generator, dtype=torch.int64)
        for i in range(skip, n):
            yield int(order[i]), int(seeds[i])
