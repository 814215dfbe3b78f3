"""The data tests keep their dataset index cache (data/index_cache.py) in a folder of their own, never the
user's ~/.cache: each test starts with an empty one."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_index_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RSN_CACHE_DIR", str(tmp_path_factory.mktemp("rsn_cache")))
