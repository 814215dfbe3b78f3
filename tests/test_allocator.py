"""allocator.keep_freed_memory: a freed block is reused without the kernel mapping and zero-filling it again,
in runs that compute on the CPU; runs on a GPU keep glibc's defaults.

Each case runs in a fresh interpreter: mallopt settings are per process and cannot be undone.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="keep_freed_memory acts on glibc's malloc only (Linux with glibc)")

# A training step's pattern: activations of several sizes, some above glibc's largest dynamic mmap
# threshold (32 MiB, like RSN-18's at batch 16, 256x192), allocated and touched, then all freed; count the
# page faults of 4 steps after 4 (the heap settles in the first few).
REALLOCATE = """
import resource, torch
from rsn_lightning.allocator import keep_freed_memory
APPLY
def step():
    live = []
    for mib in (48, 8, 40, 16, 36, 4, 48):
        t = torch.empty(mib << 18, dtype=torch.float32)
        t.fill_(1.0)
        live.append(t)
    live.clear()
step(); step(); step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(state)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


# what rsn-train and rsn-eval do first (cli/common.py), with a trainer config of the given accelerator; its log
# line goes to stdout, and the state is what the process remembers as applied (None: nothing was)
START_RUN = """
import logging, sys
from omegaconf import OmegaConf
from rsn_lightning import allocator
from rsn_lightning.cli.common import start_run
logging.basicConfig(level="INFO", stream=sys.stdout, format="%(message)s")
start_run(OmegaConf.create({"trainer": {"accelerator": "ACCELERATOR"}}))
state = str(allocator._state)
"""


def _run(apply: str = "state = keep_freed_memory()", **env_overrides) -> tuple[str, int, str]:
    """(the state the call returned, page faults of 4 steps, everything printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", REALLOCATE.replace("APPLY", apply)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    lines = out.splitlines()
    return lines[-2], int(lines[-1]), out


def test_freed_memory_is_reused_without_page_faults():
    default_state, default_faults, _ = _run(RSN_KEEP_FREED_MEMORY="0")
    kept_state, kept_faults, _ = _run()
    assert default_state == "default (RSN_KEEP_FREED_MEMORY=0)"
    assert kept_state.startswith("glibc: freed memory kept")
    if default_faults < 4 * 4096:
        pytest.skip(f"glibc's default faulted only {default_faults} times in 4 steps of 200 MiB here (huge "
                    "pages?): nothing to compare")
    # with the default every block above 32 MiB is mapped, zero-filled and unmapped each step (172 MiB:
    # 44,032 pages of 4 KiB per step; about 46,000 faults per step measured); kept memory is mapped once
    # and reused (0 faults in most runs, up to 49,152 seen while the heap settles)
    assert kept_faults < default_faults / 4, (kept_faults, default_faults)


def test_users_own_malloc_settings_are_left_alone():
    state, _, _ = _run(MALLOC_MMAP_THRESHOLD_="131072")
    assert state.startswith("the user's glibc malloc settings")


def test_the_device_decides_whether_freed_memory_is_kept():
    # a GPU device applies nothing and remembers nothing, so the CPU call after it still applies the settings
    state, _, _ = _run('state = " | ".join([keep_freed_memory("gpu"), keep_freed_memory("cuda:1"), '
                       'keep_freed_memory("cpu"), keep_freed_memory("cuda")])')
    kept = "glibc: freed memory kept (mmap threshold 1 GiB, no trim)"
    # once applied they cannot be undone, and the phrase says so even when asked for a GPU
    assert state.split(" | ") == ["default (computing on cuda)", "default (computing on cuda)", kept, kept]


def test_a_gpu_trainer_run_keeps_glibc_defaults_and_a_cpu_one_keeps_freed_memory():
    # through start_run, as rsn-train and rsn-eval call it: on a GPU run the process remembers no applied state
    # and faults as glibc's default does (every block above 32 MiB mapped and zero-filled again each step)
    gpu_state, gpu_faults, gpu_out = _run(START_RUN.replace("ACCELERATOR", "gpu"))
    cpu_state, cpu_faults, cpu_out = _run(START_RUN.replace("ACCELERATOR", "cpu"))
    assert gpu_state == "None" and "memory allocator: default (computing on cuda)" in gpu_out
    assert cpu_state.startswith("glibc: freed memory kept") and f"memory allocator: {cpu_state}" in cpu_out
    if gpu_faults < 4 * 4096:
        pytest.skip(f"glibc's default faulted only {gpu_faults} times in 4 steps of 200 MiB here: nothing to compare")
    assert cpu_faults < gpu_faults / 4, (cpu_faults, gpu_faults)


def test_auto_follows_whether_torch_sees_a_gpu():
    import torch

    from rsn_lightning.allocator import compute_device_type

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert compute_device_type("auto") == compute_device_type(None) == expected
    assert [compute_device_type(d) for d in ("cpu", "gpu", "cuda", "cuda:1", "mps")] == \
        ["cpu", "cuda", "cuda", "cuda", "mps"]
