"""Optional dependencies, each in a pip extra of pyproject.toml: a missing one is named with the extra
that installs it, when the feature that needs it is asked for."""

from __future__ import annotations

import importlib
from types import ModuleType

from rsn_lightning.errors import UserFacingError


class MissingExtraError(UserFacingError, ImportError):
    """A feature needs a package of an extra that is not installed; the message says which to install."""


def import_extra(module: str, extra: str, needed_for: str) -> ModuleType:
    """``importlib.import_module(module)``, or MissingExtraError naming ``rsn-lightning[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{needed_for} needs {module.split('.')[0]}, which is not installed: pip install 'rsn-lightning[{extra}]' "
            f"(in a checkout: EXTRAS={extra} bash scripts/setup.sh)") from err
