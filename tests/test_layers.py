"""The package keeps its layers: import-linter's ``lint-imports`` checks the layers contract of
pyproject.toml (``[tool.importlinter]``) over every import, those inside functions included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the dev extra: bash scripts/setup.sh)")
    proc = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in proc.stdout


def test_the_contract_names_every_package_and_top_level_module():
    """A new subpackage or top-level module must get its place in the layers."""
    import tomllib

    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    package = REPO / "src" / "rsn_lightning"
    actual = {f"rsn_lightning.{p.stem if p.is_file() else p.name}" for p in package.iterdir()
              if (p.is_file() and p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert actual == named, f"not in the contract: {sorted(actual - named)}; not a package: {sorted(named - actual)}"
