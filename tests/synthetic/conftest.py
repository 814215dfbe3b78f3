"""The synthetic root the format, truth and detection tests read, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsn_lightning.synthetic import generate

from .files import SEED, SIZE


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, num_train=100, num_val=80, seed=SEED, image_size=SIZE)
    return root
