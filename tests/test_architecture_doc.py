"""docs/architecture.md matches the code: its tree lists every module of the package, and every Python
file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "rsn_lightning"
DOC = REPO / "docs" / "architecture.md"


def _tree_modules(text: str) -> set[str]:
    """Modules of the doc's package tree (the first fenced block), as paths relative to the package."""
    tree = re.search(r"^```\n(src/rsn_lightning/.*?)^```", text, re.MULTILINE | re.DOTALL).group(1)
    modules, folder = set(), None
    for line in tree.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        if indent == 2:
            name = line.split()[0]
            folder = name.rstrip("/") if name.endswith("/") else None
            if name.endswith(".py"):
                modules.add(name)
        elif indent == 4 and folder:
            modules |= {f"{folder}/{name}" for name in line.split() if name.endswith(".py")}
    return modules


def test_tree_lists_every_module():
    actual = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    listed = _tree_modules(DOC.read_text())
    assert listed == actual, f"not in the doc: {sorted(actual - listed)}; not in the code: {sorted(listed - actual)}"


def test_every_named_python_file_exists():
    names = set(re.findall(r"[\w/]+\.py\b", DOC.read_text()))
    known = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*.py")}
    known |= {p.name for p in REPO.glob("*.py")} | {str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py")}
    assert names - known == set(), sorted(names - known)
