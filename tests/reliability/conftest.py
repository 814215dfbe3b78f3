"""Shared inputs of the bad-input corpus, and the totals table printed at the end of the session."""

from __future__ import annotations

from collections import Counter

import pytest

OUTCOMES_KEY = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[OUTCOMES_KEY] = []


@pytest.fixture
def record_outcome(request):
    """record_outcome(case, expected, observed): kept for the totals table."""
    def record(case: str, expected: str, observed: str) -> None:
        request.config.stash[OUTCOMES_KEY].append((case, expected, observed))
    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = config.stash.get(OUTCOMES_KEY, [])
    if not rows:
        return
    tr = terminalreporter
    tr.section("bad-input corpus: outcomes by class")
    observed = Counter(o for _, _, o in rows)
    expected = Counter(e for _, e, _ in rows)
    for cls in sorted(set(observed) | set(expected)):
        tr.write_line(f"{cls:<28} observed {observed.get(cls, 0):>3}   expected {expected.get(cls, 0):>3}")
    tr.write_line(f"{'total':<28} {len(rows):>12}")
    for case, exp, obs in rows:
        if exp != obs:
            tr.write_line(f"  {case}: expected {exp}, observed {obs}")
