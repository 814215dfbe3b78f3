"""A DataLoader whose worker processes cannot die unexplained.

When the OS kills a loader worker (out of memory, a segfault in a decoder), PyTorch's main process
fails somewhere in its inter-process plumbing, often with an unrelated ``ConnectionResetError`` or
``EOFError``. ``WatchedDataLoader`` checks its workers when fetching a batch fails and raises
``DataLoaderWorkerDied`` naming the worker, its exit signal, and what to do.
"""

from __future__ import annotations

import signal

from torch.utils.data import DataLoader

from rsn_lightning.errors import UserFacingError


class DataLoaderWorkerDied(UserFacingError, RuntimeError):
    """A loader worker process ended during the run."""


def _dead_workers(iterator) -> list[str]:
    dead = []
    for w in getattr(iterator, "_workers", None) or []:
        code = w.exitcode
        if code not in (None, 0):
            how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exit status {code}"
            dead.append(f"pid {w.pid} ({how})")
    return dead


def _watched(iterator):
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as err:
            dead = _dead_workers(iterator)
            if dead:
                raise DataLoaderWorkerDied(
                    f"a data loader worker process died: {', '.join(dead)}. SIGKILL usually means the machine ran "
                    "out of memory (lower data.num_workers or data.batch_size); the run stopped here, resume "
                    "it with ckpt_path=last") from err
            raise
        yield batch


class WatchedDataLoader(DataLoader):
    """``DataLoader`` that turns a dead worker into ``DataLoaderWorkerDied`` (see the module docstring)."""

    def __iter__(self):
        iterator = super().__iter__()
        return iterator if self.num_workers == 0 else _watched(iterator)
