"""The errors a user sees: each message says what, where and what to do, and the console scripts print
it without a traceback (exit status 2). This module imports nothing of the package's, so every layer
can raise them."""

from __future__ import annotations

import json
from pathlib import Path


class UserFacingError(Exception):
    """An error whose message says all a user needs (what, where, what to do): the apps print it
    without a traceback (``exit_on_bad_input``)."""


class BadInputError(UserFacingError, ValueError):
    """A user's input (config value, checkpoint, data file) is unusable; the message says which and why."""


class MissingInputFile(BadInputError, FileNotFoundError):
    """A file the config names does not exist."""


class ConfigError(BadInputError):
    """One or more config values are out of range; the message lists each with its key."""


def load_json(path, what: str):
    """json.load with errors that name the file (and what it was supposed to be)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputFile(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"{what} {path} is not valid JSON: {e}") from e
