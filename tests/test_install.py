"""Installed as users install: a wheel built from the project carries conf/, and its console scripts run
from a folder outside the repository, with no checkout and no RSN_CONF_DIR to fall back on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# the files a wheel is built from (a copy, so that the build leaves nothing in the checkout)
BUILD_INPUTS = ("src/rsn_lightning", "conf", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")

# docs (README "Your own configs"): an experiment kept outside the repository, on top of the quickstart
CUSTOM_EXPERIMENT = """\
# @package _global_
defaults:
  - quickstart
  - _self_

tags: [mine]
model:
  net:
    width_mult: 0.25
trainer:
  max_epochs: 2
"""


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    """A fresh venv with the project's wheel installed (--no-deps); its dependencies come from the
    project's own environment through a .pth line, so nothing (no torch) is downloaded, less the optional
    extras' packages (``WITHOUT_EXTRAS``): the default install, as `pip install rsn-lightning` gives."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in BUILD_INPUTS:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, source / name)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
          str(source)], cwd=tmp)
    wheels = list(dist.glob("rsn_lightning-*.whl"))
    assert len(wheels) == 1, wheels

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # a plain path line: the project venv's own .pth files (its editable finder) are not processed
    deps = _site_packages_without(WITHOUT_EXTRAS, tmp / "deps")
    Path(purelib, "project_dependencies.pth").write_text(f"{deps}\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheels[0])],
         cwd=tmp)
    return env_dir


# the distributions of the augment and mpii extras (pyproject.toml): absent from the default install
WITHOUT_EXTRAS = ("albumentations", "scipy")


def _site_packages_without(distributions, folder: Path) -> Path:
    """The project venv's site-packages as a folder of links, less the files of ``distributions`` (their
    packages and metadata, so that neither an import nor an installed-version check finds them)."""
    from importlib.metadata import distribution

    skip = {Path(str(f)).parts[0] for name in distributions for f in distribution(name).files or ()}
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name not in skip:
            (folder / entry.name).symlink_to(entry)
    return folder


def _clean_env(env_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RSN_CONF_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_wheel_carries_configs_and_console_scripts_run_outside_the_repo(installed_venv, tmp_path):
    env = _clean_env(installed_venv)
    where = _run([installed_venv / "bin" / "python", "-c",
                  "import rsn_lightning; from rsn_lightning.cli.common import config_dir; "
                  "print(rsn_lightning.__file__); print(config_dir())"], cwd=tmp_path, env=env).stdout.split()
    package = Path(where[0]).parent
    assert package.is_relative_to(installed_venv), f"imported {package}, not the wheel's copy"
    assert Path(where[1]) == package / "conf"
    def yaml_files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))

    assert yaml_files(package / "conf") == yaml_files(PROJECT_ROOT / "conf")

    job = _run([installed_venv / "bin" / "rsn-train", "--cfg", "job"], cwd=tmp_path, env=env).stdout
    assert "rsn_lightning.training.module.RSNLitModule" in job
    job = _run([installed_venv / "bin" / "rsn-train", "experiment=quickstart", "--cfg", "job", "--resolve"],
               cwd=tmp_path, env=env).stdout
    assert f"root_dir: {tmp_path}" in job  # data and logs go under the folder the command was typed in

    helptext = _run([installed_venv / "bin" / "rsn-predict", "--help"], cwd=tmp_path, env=env).stdout
    assert "ckpt_path" in helptext and "input" in helptext
    assert not any(tmp_path.iterdir()), "composing a config must not write into the working folder"


def test_custom_experiment_outside_the_repo(installed_venv, tmp_path):
    """The README's example of a user's own config group, through --config-dir and hydra.searchpath."""
    (tmp_path / "my_configs" / "experiment").mkdir(parents=True)
    (tmp_path / "my_configs" / "experiment" / "my_tiny.yaml").write_text(CUSTOM_EXPERIMENT)
    env = _clean_env(installed_venv)
    for extra in (["--config-dir", "my_configs"], ["hydra.searchpath=[file://my_configs]"]):
        job = _run([installed_venv / "bin" / "rsn-train", *extra, "experiment=my_tiny", "--cfg", "job"],
                   cwd=tmp_path, env=env).stdout
        assert "- mine" in job and "width_mult: 0.25" in job and "max_epochs: 2" in job
        assert "name: rsn_tiny" in job  # the rest comes from the shipped quickstart


def test_default_install_runs_the_quickstart_and_names_a_missing_extra(installed_venv, tmp_path):
    """The README's first command needs no extra; a feature that needs one says which (exit 2, no traceback)."""
    env = _clean_env(installed_venv)
    found = _run([installed_venv / "bin" / "python", "-c", "import importlib.util as u; "
                  f"print([u.find_spec(m) is not None for m in {WITHOUT_EXTRAS}])"], cwd=tmp_path, env=env).stdout
    assert found.strip() == "[False, False]"
    quick = ["experiment=quickstart", "data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.batch_size=8",
             "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1"]
    color = subprocess.run([installed_venv / "bin" / "rsn-train", *quick, "+data.augment.color_prob=0.5"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    assert color.returncode == 2, color.stderr
    assert "rsn-lightning[augment]" in color.stderr and "Traceback" not in color.stderr
    out = _run([installed_venv / "bin" / "rsn-train", *quick], cwd=tmp_path, env=env).stdout
    assert "Validation (last checkpoint)" in out and "checkpoint:" in out
