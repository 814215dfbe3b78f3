"""The worker processes: the same bytes whatever their number, and a failing worker raises."""

from __future__ import annotations

import pytest

from rsn_lightning.synthetic import generate, pool, write

from .files import tree_hashes


def test_deterministic_bytes_independent_of_workers(tmp_path, monkeypatch):
    # small jobs normally run in-process; force the worker pool so it is what gets compared
    monkeypatch.setattr(write, "_POOL_MIN_IMAGES", 1)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, num_train=10, num_val=6, seed=7, image_size=(160, 128), workers=1)
    generate(b, num_train=10, num_val=6, seed=7, image_size=(160, 128), workers=2)
    generate(c, num_train=10, num_val=6, seed=8, image_size=(160, 128), workers=2)
    ha, hb, hc = tree_hashes(a), tree_hashes(b), tree_hashes(c)
    assert len(ha) == 10 + 6 + 4  # images, 3 annotation files, the marker
    assert ha == hb
    differing = [k for k in ha if ha[k] != hc.get(k)]
    assert len(differing) >= 16 + 3  # every image and every annotation file


def test_failing_worker_raises_instead_of_hanging(tmp_path):
    missing = tmp_path / "not_created"
    tasks = [(str(missing), "val", i, 0, (128, 96), 90, 2) for i in range(4)]
    with pytest.raises(RuntimeError, match="worker failed"):
        pool.run_workers(tasks, 2, {"train": ([], [], []), "val": ([], [], [])}, None)
