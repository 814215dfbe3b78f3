"""Helpers for the model tests: the fixtures' make_weights module, loaded from ../shared (never copied)."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(scope="session")
def make_weights(rsn_checkpoint_fixtures):
    spec = importlib.util.spec_from_file_location("make_weights", rsn_checkpoint_fixtures / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
