"""Every shell command of the README and of docs/*.md runs as written.

The commands are read from the fenced ``bash``/``sh`` blocks and run verbatim, each through the
virtual environment's console script, in a subprocess, from a temporary folder outside the repository
(the venv's bin first on PATH, as after ``. .venv/bin/activate``). A test may only append to a command:
the size-limiting overrides below, and for COCO the ../shared mini set in place of /data/coco. The table
COMMANDS says how each command is run; a command with no entry fails, and so does an entry that no
longer matches a command, so the docs and this test cannot drift apart.

To add a command to the README or a guide: add its exact text (trailing ``# comment`` removed) to
COMMANDS with ``Run`` (append size limits, name the files it reads), ``Compose`` (cannot run here: say
why; composed with ``--cfg job``) or ``NotRun`` (not a tool call, or run by CI itself: say why).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
COCO_MINI = SHARED / "data" / "coco_mini"
FIXTURES = SHARED / "fixtures" / "rsn_checkpoints"
VENV_BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# ---- the only things a test appends to a command ----------------------------------------------------
# one training and one validation batch on CPU (Lightning's fast_dev_run; also logs to CSV)
FDR = ("debug=fdr",)
# the quickstart on 16 synthetic images, 2 steps, one validation: a real run that writes a checkpoint
QUICK = ("data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.batch_size=8", "trainer.max_epochs=1",
         "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1")
# ../shared/data/coco_mini (4 val2017 images, 14 people, 118 detections) in place of a COCO 2017 root:
# the data-root override a COCO command gets here (both splits are the mini set)
COCO_MINI_DATA = tuple(
    f"data.{key}={COCO_MINI / name}" for key, name in (
        ("root", ""), ("train_ann_file", "test_coco.json"), ("train_image_dir", ""),
        ("val_ann_file", "test_coco.json"), ("val_image_dir", ""), ("det_file", "test_coco_det_AP_H_56.json"))
)
# a COCO preset's trainer is DDP over every GPU; here there is no GPU
ON_CPU = ("trainer=cpu", "data.batch_size=2", "data.num_workers=0")


@dataclass(frozen=True)
class Run:
    """Run ``part`` of the command (the whole command by default) with ``append`` added; ``inputs`` are
    the files the command names, made in its working folder first; ``expect`` must appear in stdout."""

    append: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    expect: str | None = None
    part: str | None = None
    part_reason: str | None = None  # why the rest of the command is not run
    # a module fixture that runs exactly this command (with ``append``) for later commands: its run is this
    # command's run, not repeated
    ran_by: str | None = None


@dataclass(frozen=True)
class Compose:
    """Cannot run here (the reason); the command is composed verbatim with ``--cfg job`` instead
    (a multirun: every job of its sweep is composed, Hydra's config included)."""

    reason: str
    needs_module: str | None = None  # an optional plugin without which nothing can be composed


@dataclass(frozen=True)
class OnSlurm(Run):
    """Run on the local SLURM cluster (scripts/local_slurm.sh, the ``slurm_cluster`` fixture; skipped
    without it): the command submits its jobs there and waits for them, as on a user's login node."""


@dataclass(frozen=True)
class NotRun:
    reason: str


COMMANDS: dict[str, Run | Compose | NotRun] = {
    # README: one way to call the tools
    ". .venv/bin/activate": NotRun("a shell builtin, not a tool: this test puts the venv's bin first on PATH, "
                                   "which is what activating does"),
    # README: Quickstart
    "bash scripts/setup.sh && .venv/bin/rsn-train experiment=quickstart": Run(
        QUICK, expect="Validation (last checkpoint)", part=".venv/bin/rsn-train experiment=quickstart",
        part_reason="bash scripts/setup.sh creates .venv: CI runs it itself (.ci/run) before this test",
        ran_by="quickstart_folder"),
    "bash scripts/setup.sh && .venv/bin/python -m pytest": NotRun(
        "the test suite itself: exactly what CI runs (.ci/run)"),
    # docs/install.md: your own configs
    "rsn-train --config-dir my_configs experiment=my_tiny": Run(
        (*FDR, *QUICK[:2]), inputs=("my_configs/",), expect="Validation (last checkpoint)"),
    'rsn-train "hydra.searchpath=[file://my_configs]" experiment=my_tiny': Run(
        (*FDR, *QUICK[:2]), inputs=("my_configs/",), expect="Validation (last checkpoint)"),
    # docs/training.md: training on COCO
    "rsn-train experiment=coco_rsn18_256x192 data.root=/data/coco "
    "data.det_file=/data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json": Run(
        (*COCO_MINI_DATA, *ON_CPU, *FDR), inputs=("coco_mini",), expect="Validation"),
    "rsn-train experiment=coco_4xrsn50_384x288 trainer=ddp": Compose(
        "DDP over every GPU of a node: needs GPUs"),
    # docs/clusters.md: launchers, site limits, a cluster without GPUs, the SLURM cluster on this machine
    "rsn-train -m hydra/launcher=slurm experiment=coco_rsn50_256x192 trainer=ddp trainer.devices=8 "
    "model.net.num_stages=1,2,4": Compose(
        "submits to a SLURM cluster", needs_module="hydra_plugins.hydra_submitit_launcher"),
    "rsn-train -m hydra/launcher=slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=1440 "
    "hydra.launcher.mem_gb=200 experiment=coco_rsn18_256x192 trainer=ddp trainer.devices=4 "
    "model.net.width_mult=0.5,1.0": Compose(
        "submits to a SLURM cluster", needs_module="hydra_plugins.hydra_submitit_launcher"),
    "rsn-train -m hydra/launcher=slurm_cpu trainer=ddp_cpu experiment=quickstart model.optimizer.lr=1e-3,2e-3": OnSlurm(
        QUICK, expect="Sweep summary (2 jobs, 0 failed)"),
    "rsn-train -m experiment=quickstart sweep_name=lr_grid model.optimizer.lr=1e-3,2e-3,4e-3": Run(
        QUICK, expect="Sweep summary (3 jobs, 0 failed)"),
    "bash scripts/local_slurm.sh start": NotRun("the slurm tests' fixture runs it (tests/conftest.py: slurm_cluster)"),
    "bash scripts/local_slurm.sh status": NotRun("the slurm tests' fixture runs it (tests/conftest.py: slurm_cluster)"),
    "bash scripts/local_slurm.sh stop": NotRun("the slurm tests' fixture runs it (tests/conftest.py: slurm_cluster)"),
    "rsn-train -m hydra/launcher=joblib hydra.launcher.n_jobs=2 experiment=coco_rsn18_256x192 trainer=gpu "
    "model.net.width_mult=0.5,1.0": Run(
        (*COCO_MINI_DATA, *ON_CPU, *FDR), inputs=("coco_mini",), expect="summary.csv"),
    # docs/clusters.md: sweeps (the sweep example, then the upload of its offline wandb runs)
    "rsn-train -m experiment=quickstart logger=many_loggers model.optimizer.lr=1e-3,2e-3,4e-3": Run(
        QUICK, expect="summary.csv", ran_by="quickstart_sweep_folder"),
    "wandb sync logs/train/multiruns/*/*/wandb/offline-run-*": Run(
        ("--dry-run",), inputs=("quickstart sweep",), expect="Would sync 3 run(s)"),
    # docs/analysis.md: after the quickstart (its run folder in the working folder)
    'rsn-analyze data/synthetic/annotations/person_keypoints_val.json '
    '"$(ls -t logs/train/runs/*/results/*.json | head -1)" --out analysis': Run(
        inputs=("quickstart run",), expect="error_analysis.json"),
    'rsn-eval experiment=quickstart ckpt_path="$(ls -td logs/train/runs/*/ | head -1)checkpoints/last.ckpt" '
    'analysis=true': Run(QUICK[:2], inputs=("quickstart run",), expect="error_analysis"),
    "jupyter execute notebooks/error_analysis.ipynb": Run(inputs=("quickstart run", "notebooks/")),
    # docs/weights.md: fixture weights in both layouts stand for the downloads
    "rsn-convert --from official iter-96000.pth rsn18_official.pth": Run(
        inputs=("iter-96000.pth",), expect="rsn18_official.pth"),
    "rsn-convert --from mmpose rsn18_coco_256x192.pth rsn18_mmpose.pth": Run(
        inputs=("rsn18_coco_256x192.pth",), expect="rsn18_mmpose.pth"),
    "rsn-eval ckpt_path=rsn18_mmpose.pth experiment=coco_rsn18_256x192 data.root=/data/coco": Run(
        (*COCO_MINI_DATA, *ON_CPU, "+trainer.limit_val_batches=2"), inputs=("rsn18_mmpose.pth", "coco_mini"),
        expect="AP"),
    # docs/inference.md: a quickstart checkpoint stands for model.ckpt
    "rsn-predict ckpt_path=model.ckpt input=photos/ detections=person_dets.json": Run(
        inputs=("model.ckpt", "photos/", "person_dets.json"), expect="people in 4 images"),
    "rsn-export model.ckpt model.onnx --input-size 192 256": Run(
        inputs=("model.ckpt",), expect="onnxruntime vs PyTorch"),
    # docs/synthetic.md: a few images instead of 5,000
    "rsn-synth my_synthetic --num-train 4500 --num-val 500 --seed 0 --image-size 384 288": Run(
        ("--num-train", "8", "--num-val", "4"), expect="synthetic dataset in"),
    # docs/performance.md: the benchmarks (the one of its table on the tiny preset, 1 step, tiny
    # evaluation), and the data benchmark
    "rsn-bench --model rsn18 --input 192 256 --batch 32": Run(
        ("--batch", "2", "--steps", "1", "--warmup", "0", "--rounds", "1"), expect="images/s"),
    "rsn-bench --model rsn18 rsn50 --input 192 256 --batch 16 --eval-images 5000 --data-seconds 5 --json bench.json "
    "--markdown bench.md": Run(
        ("--model", "rsn_tiny", "--input", "64", "96", "--batch", "2", "--steps", "1", "--warmup", "0", "--rounds", "1",
         "--eval-images", "20", "--data-seconds", "0.2", "--gemm-size", "256"), expect="images/s"),
    "python scripts/bench_data.py": Run(
        ("--seconds", "0.2", "--rounds", "1"), inputs=("scripts/", "coco_mini"), expect="/s"),
}


# ---- reading the docs -----------------------------------------------------------------------------------
FENCE = re.compile(r"^```(bash|sh|shell)\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_commands() -> list[tuple[str, str]]:
    """(doc file, command) for every command line of the docs' shell blocks; comment lines and trailing
    ``# comments`` dropped, backslash continuations joined."""
    found = []
    for doc in DOCS:
        for match in FENCE.finditer(doc.read_text()):
            for line in match.group(2).replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    found.append((doc.name, re.sub(r"\s+", " ", line)))
    return found


DOC_COMMANDS = doc_commands()


def test_every_doc_command_has_an_entry_and_every_entry_a_command():
    documented = {cmd for _, cmd in DOC_COMMANDS}
    missing = [f"{doc}: {cmd}" for doc, cmd in DOC_COMMANDS if cmd not in COMMANDS]
    stale = sorted(set(COMMANDS) - documented)
    assert not missing, "commands of the docs with no entry in COMMANDS (add one):\n" + "\n".join(missing)
    assert not stale, "entries of COMMANDS that no doc shows any more (remove or update them):\n" + "\n".join(stale)
    for cmd, how in COMMANDS.items():
        if isinstance(how, Run) and how.part is not None:
            assert how.part in cmd and how.part_reason, cmd


# ---- the files commands read ------------------------------------------------------------------------
def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path}: ../shared beside the project's root (development and CI) has it")
    return path


def _fixture_state_dict(layout: str) -> dict:
    sys.path.insert(0, str(_need(FIXTURES)))
    try:
        from make_weights import make_state_dict
    finally:
        sys.path.remove(str(FIXTURES))
    return make_state_dict(FIXTURES / f"{layout}_rsn18_keys.json")


def _official(cwd: Path) -> None:
    import torch

    torch.save({"model": _fixture_state_dict("official"), "iteration": 96000}, cwd / "iter-96000.pth")


def _mmpose(cwd: Path) -> None:
    import torch

    torch.save({"meta": {"epoch": 210}, "state_dict": _fixture_state_dict("mmpose")}, cwd / "rsn18_coco_256x192.pth")


def _mmpose_converted(cwd: Path) -> None:
    from rsn_lightning.cli.convert import main as convert

    _mmpose(cwd)
    convert(["--from", "mmpose", str(cwd / "rsn18_coco_256x192.pth"), str(cwd / "rsn18_mmpose.pth")])


def _photos(cwd: Path) -> None:
    (cwd / "photos").mkdir()
    for image in sorted(_need(COCO_MINI).glob("*.jpg")):
        shutil.copy2(image, cwd / "photos" / image.name)


def _detections(cwd: Path) -> None:
    shutil.copy2(_need(COCO_MINI / "test_coco_det_AP_H_56.json"), cwd / "person_dets.json")


def _my_configs(cwd: Path) -> None:
    """The install guide's own example file: the yaml block after the first mention of its path."""
    guide = (REPO / "docs" / "install.md").read_text()
    name = "my_configs/experiment/my_tiny.yaml"
    start = guide.index(name)
    block = re.compile(r"^```yaml\s*\n(.*?)^```", re.MULTILINE | re.DOTALL).search(guide, start)
    (cwd / name).parent.mkdir(parents=True)
    (cwd / name).write_text(block.group(1))


def _checkout_folder(name: str) -> Callable[[Path], None]:
    # scripts/ and notebooks/ of the source checkout, which the docs run from the clone's root
    return lambda cwd: (cwd / name).symlink_to(REPO / name, target_is_directory=True)


def _copy_run(fixture: str) -> Callable[[Path, pytest.FixtureRequest], None]:
    """The logs/ of an earlier size-limited command of the docs (a fixture's working folder) copied into
    this one, its generated data/ linked: the state the docs' next command starts from."""

    def make(cwd: Path, request: pytest.FixtureRequest) -> None:
        earlier = request.getfixturevalue(fixture)
        shutil.copytree(earlier / "logs", cwd / "logs")
        (cwd / "data").symlink_to(earlier / "data", target_is_directory=True)

    return make


INPUTS: dict[str, Callable[[Path], None]] = {
    "coco_mini": lambda cwd: _need(COCO_MINI),
    "iter-96000.pth": _official,
    "rsn18_coco_256x192.pth": _mmpose,
    "rsn18_mmpose.pth": _mmpose_converted,
    "photos/": _photos,
    "person_dets.json": _detections,
    "my_configs/": _my_configs,
    "scripts/": _checkout_folder("scripts"),
    # copied, not linked: a notebook reads logs/ beside its own folder, which must be this working folder
    "notebooks/": lambda cwd: shutil.copytree(REPO / "notebooks", cwd / "notebooks"),
}
# inputs made from a module-scoped fixture (an earlier command's run), given the test's request
RUN_INPUTS: dict[str, Callable[[Path, pytest.FixtureRequest], None]] = {
    "quickstart run": _copy_run("quickstart_folder"),
    "quickstart sweep": _copy_run("quickstart_sweep_folder"),
}


# what the fixtures below ran: argv -> its completed process (the documented command's own run, ``ran_by``)
FIXTURE_RUNS: dict[tuple[str, ...], subprocess.CompletedProcess] = {}


def _run_for_later(argv: list[str], cwd: Path) -> None:
    FIXTURE_RUNS[tuple(argv)] = _run_tool(argv, cwd)


@pytest.fixture(scope="module")
def quickstart_folder(tmp_path_factory) -> Path:
    """The folder the README's quickstart command (size-limited) ran in: its logs/ and data/."""
    cwd = tmp_path_factory.mktemp("quickstart")
    _run_for_later(["rsn-train", "experiment=quickstart", *QUICK], cwd)
    return cwd


@pytest.fixture(scope="module")
def quickstart_checkpoint(quickstart_folder) -> Path:
    """model.ckpt of docs/inference.md: the checkpoint the quickstart reports (its last)."""
    (checkpoint,) = (quickstart_folder / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt")
    return checkpoint


@pytest.fixture(scope="module")
def quickstart_sweep_folder(tmp_path_factory) -> Path:
    """The folder the sweep example of docs/clusters.md (size-limited) ran in."""
    cwd = tmp_path_factory.mktemp("sweep")
    _run_for_later(["rsn-train", "-m", "experiment=quickstart", "logger=many_loggers",
                    "model.optimizer.lr=1e-3,2e-3,4e-3", *QUICK], cwd)
    return cwd


# ---- running ----------------------------------------------------------------------------------------
def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSN_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WANDB_API_KEY", None)
    return env


SHELL_SYNTAX = re.compile(r"[$*|;&<>`]")


def _run_tool(argv: list[str], cwd: Path, timeout: int = 300,
              shell_line: str | None = None) -> subprocess.CompletedProcess:
    """Run a console script of the venv; ``shell_line``: the command uses shell syntax (``$(...)``, globs),
    so bash runs that line as typed (the first word must still be a tool of the venv)."""
    tool = argv[0].removeprefix(".venv/bin/")
    exe = shutil.which(tool, path=str(VENV_BIN))
    assert exe, f"{argv[0]} is not a console script of the venv ({VENV_BIN})"
    command = ["bash", "-c", shell_line] if shell_line else [exe, *argv[1:]]
    proc = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{shlex.join(argv)} exited {proc.returncode} in {cwd}\n"
                                  f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _compose_multirun(argv: list[str]) -> None:
    """Every job of a sweep, composed as Hydra's launcher would (no console script can: Hydra refuses
    ``-m`` with ``--cfg``)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from rsn_lightning.cli.common import config_dir

    assert argv[0] == "rsn-train" and argv[1] == "-m", argv
    parsed = OverridesParser.create().parse_overrides(argv[2:])
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    assert len(jobs) > 1
    with initialize_config_dir(config_dir(), version_base="1.3"):
        for job in jobs:
            cfg = compose("train", overrides=list(job), return_hydra_config=True)
            OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.parametrize("doc,command", DOC_COMMANDS, ids=[c[:60] for _, c in DOC_COMMANDS])
def test_doc_command_runs_as_written(doc, command, tmp_path, request):
    how = COMMANDS.get(command)
    if how is None:
        pytest.fail(f"{doc}: no entry in COMMANDS for {command!r}")
    if isinstance(how, NotRun):
        pytest.skip(how.reason)
    argv = shlex.split(how.part or command) if isinstance(how, Run) else shlex.split(command)
    if isinstance(how, Compose):
        if how.needs_module:
            pytest.importorskip(how.needs_module, reason=f"{how.reason}; composing it needs {how.needs_module}")
        if "-m" in argv:
            _compose_multirun(argv)
        else:
            _run_tool([*argv, "--cfg", "job"], tmp_path)
        return
    if isinstance(how, OnSlurm):
        request.getfixturevalue("slurm_cluster")
    for name in how.inputs:
        if name == "model.ckpt":
            shutil.copy2(request.getfixturevalue("quickstart_checkpoint"), tmp_path / "model.ckpt")
        elif name in RUN_INPUTS:
            RUN_INPUTS[name](tmp_path, request)
        else:
            INPUTS[name](tmp_path)
    line = how.part or command
    shell_line = f"{line} {shlex.join(how.append)}" if SHELL_SYNTAX.search(line) else None
    if how.ran_by:  # a fixture ran this very command for the commands after it
        request.getfixturevalue(how.ran_by)
        tool = [argv[0].removeprefix(".venv/bin/"), *argv[1:], *how.append]
        assert tuple(tool) in FIXTURE_RUNS, f"{how.ran_by} does not run {shlex.join(tool)}"
        proc = FIXTURE_RUNS[tuple(tool)]
    else:
        proc = _run_tool([*argv, *how.append], tmp_path, shell_line=shell_line)
    if how.expect:
        assert how.expect in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]


def test_quickstart_decodes_its_images_once(quickstart_folder):
    # the README's first command holds its small synthetic set decoded in memory (data.image_cache_gib)
    (log,) = (quickstart_folder / "logs" / "train" / "runs").glob("*/train.log")
    text = log.read_text()
    assert "coco train: decoded its 16 images into memory once" in text, text[-3000:]
    assert re.search(r"coco val: decoded its [1-8] images into memory once", text), text[-3000:]
