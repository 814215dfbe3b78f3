"""Shared fixtures: the real mini datasets and checkpoint fixtures beside the project's root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist workers (pyproject's addopts: -n) share the machine's cores: each worker's torch, and the
# console scripts its tests start, get their share of threads. Two processes running 2-thread OpenMP
# regions on 2 cores each wait on the other's threads, many times slower than 1 thread each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", _share)
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
SHARED_DIR = PROJECT_ROOT.parent / "shared"


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores, as most tests wait on a console script's start or a
    scheduler's answer part of the time (pyproject's addopts caps it with --maxprocesses)."""
    return (os.cpu_count() or 1) + 1


def _shared_path(*parts: str) -> Path:
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path}: the real mini datasets and checkpoint fixtures live in ../shared beside the "
            "project's root in development and CI; a user's clone has none"
        )
    return path


@pytest.fixture(scope="session")
def coco_mini_dir() -> Path:
    """../shared/data/coco_mini: 4 COCO val2017 images, test_coco.json, detections, example preds."""
    return _shared_path("data", "coco_mini")


@pytest.fixture(scope="session")
def mpii_mini_dir() -> Path:
    """../shared/data/mpii_mini: 5 MPII images and test_mpii.json."""
    return _shared_path("data", "mpii_mini")


@pytest.fixture(scope="session")
def rsn_checkpoint_fixtures() -> Path:
    """../shared/fixtures/rsn_checkpoints: key layouts, make_weights.py and reference outputs."""
    return _shared_path("fixtures", "rsn_checkpoints")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic COCO-format dataset generated once per test session."""
    from rsn_lightning.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, num_train=24, num_val=8, seed=0)
    return root


@pytest.fixture(scope="session", autouse=True)
def _config_resolvers():
    """The resolvers the configs use (``${cwd:}``, ...), registered as each Hydra app's main module does, for
    the tests that compose the configs in-process."""
    from rsn_lightning.cli.common import register_resolvers

    register_resolvers()


@pytest.fixture(autouse=True)
def _torch_deterministic_mode():
    """Each test starts and ends with torch's deterministic-algorithms flag as it found it: a Trainer built
    with ``deterministic=True`` sets it for the whole process, and on the meta device it changes which
    tensors some kernels save (models/memory.py's estimate moved by 3,800 bytes in a later test)."""
    import torch

    mode = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])


@pytest.fixture(scope="session", autouse=True)
def _session_index_cache(tmp_path_factory):
    """The datasets' index cache (data/index_cache.py) of in-process tests in a temporary folder, not the
    user's ~/.cache (tests/data/conftest.py gives each data test an empty one of its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RSN_CACHE_DIR", str(tmp_path_factory.mktemp("rsn_cache")))
        yield


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real SLURM cluster on this machine for the ``slurm`` tests: scripts/local_slurm.sh (Debian's
    slurm-wlm 22.05 with munge, slurmdbd and MariaDB; two node daemons, partitions ``cpu`` and ``short``),
    started here if it is not running. A session that started it stops it at its end; pytest-xdist workers
    share one cluster and leave it running (``bash scripts/local_slurm.sh stop``; .ci/run stops it).
    Skipped where it cannot run: the packages are not installed (``bash scripts/local_slurm.sh install``,
    as root) or it does not start."""
    import fcntl

    script = PROJECT_ROOT / "scripts" / "local_slurm.sh"
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("no SLURM here: `bash scripts/local_slurm.sh install` (root, Debian) installs slurm-wlm")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster runs its daemons as root (scripts/local_slurm.sh)")
    with open("/tmp/rsn-slurm.lock", "w") as lock:  # one start at a time across xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        running = subprocess.run(["bash", str(script), "status"], capture_output=True, text=True).returncode == 0
        if not running:
            started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=300)
            if started.returncode != 0:
                pytest.skip(f"the local SLURM cluster did not start: {(started.stdout + started.stderr)[-1500:]}")
    yield script
    if not running and not os.environ.get("PYTEST_XDIST_WORKER"):
        subprocess.run(["bash", str(script), "stop"], capture_output=True, text=True, timeout=120)
