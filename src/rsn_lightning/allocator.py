"""Keep freed memory in the process: glibc's malloc settings for a training or inference loop.

glibc serves large blocks with mmap and gives them back to the kernel when they are freed (above the
mmap threshold: 128 KiB, raised dynamically up to 32 MiB on 64-bit systems) and trims the heap's free
top (above 128 KiB): glibc's mallopt(3) manual, M_MMAP_THRESHOLD and M_TRIM_THRESHOLD. A training step
allocates and frees the same activation tensors every iteration, many larger than 32 MiB at 256x192, so
every step maps them again and the kernel zero-fills each new page: for RSN-18 training at batch 16,
256x192, 2.3 million page faults and 4.1 s of kernel time per 10 steps, against 0.09-0.14 million and
0.2 s with the settings below, and 8.6-8.7 against 9.8-9.9 images/s, for 7-18% more peak resident memory
(``python scripts/bench_training_step.py --model rsn18 --allocator`` on this project's 2-core CPU;
docs/performance.md, "Fourth sitting"). PyTorch's performance tuning guide
(pytorch.org/tutorials/recipes/recipes/tuning_guide.html, "Switch Memory allocator") makes the same
point, that reusing memory beats the default malloc, and recommends preloading jemalloc or tcmalloc;
this does the part that matters here with the C library's own ``mallopt``, so nothing needs installing.

The settings: serve blocks up to 1 GiB from the heap and never trim it, so the process keeps its
high-water mark and reuses it. That is what a long training or inference process wants; a process
that frees a large peak early and then idles does not get the memory back. ``RSN_KEEP_FREED_MEMORY=0``
turns it off, and it is not applied where the user already set glibc's own malloc variables
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or
``glibc.malloc`` in ``GLIBC_TUNABLES``) or where the C library is not glibc (macOS, Windows, musl):
there it does nothing.

Only a loop that computes on the CPU gains from it: on a GPU the activations live in the device's memory
(PyTorch's CUDA caching allocator already keeps and reuses them), and the host side of a step allocates
little, so keeping freed host memory would only raise every rank's resident memory. ``keep_freed_memory``
therefore takes the run's device (a Lightning accelerator or a torch device string) and leaves glibc's
defaults alone unless it resolves to the CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB from the heap
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest, i.e. never trim
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_state: str | None = None


def compute_device_type(device: str | None) -> str:
    """The torch device type a run computes on, from a Lightning accelerator (``trainer.accelerator``:
    cpu, gpu, cuda, mps, auto) or a torch device string (``cfg.device`` of rsn-predict, ``--device`` of
    rsn-bench: auto, cpu, cuda, cuda:1, ...). ``auto``/None/'': cuda when torch sees a GPU, else mps when
    there is one, else cpu, as Lightning's and the predictor's ``auto`` choose."""
    name = str(device or "auto").strip().lower()
    if name == "auto":
        import torch

        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    name = name.split(":", 1)[0]
    return "cuda" if name == "gpu" else name


def keep_freed_memory(device: str | None = "cpu") -> str:
    """Apply the settings once per process when the run computes on the CPU (the console scripts call
    this first with their device setting; see ``compute_device_type``); returns what was done, a short
    phrase that the apps log and rsn-bench records with its machine information."""
    global _state
    if _state is not None:
        return _state  # applied earlier in this process: mallopt settings cannot be undone
    device_type = compute_device_type(device)
    if device_type != "cpu":
        # not remembered: a later CPU loop in the same process (a test, a notebook) may still apply them
        state = f"default (computing on {device_type})"
        log.debug("allocator: %s", state)
        return state
    _state = _apply()
    log.debug("allocator: %s", _state)
    return _state


def _apply() -> str:
    if os.environ.get("RSN_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return "default (RSN_KEEP_FREED_MEMORY=0)"
    if any(v in os.environ for v in _USER_VARIABLES) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "the user's glibc malloc settings (MALLOC_*_ or GLIBC_TUNABLES)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "default (not glibc)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError):
        ok = False
    return "glibc: freed memory kept (mmap threshold 1 GiB, no trim)" if ok else "default (mallopt refused)"
