"""CI tier of the crash suite: process kills never lose an acknowledged JSONL write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.harness import CRASH_POINTS, crash_point_run, kill9_run

SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))


def test_kill9_during_writes(tmp_path: Path) -> None:
    print(f"seed={SEED}")
    figures = kill9_run(tmp_path, items=600, kills=20, seed=SEED)
    assert figures.kills >= 15
    assert figures.acknowledged > 100
    assert figures.misses() == {}, figures.notes[:10]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_points(tmp_path: Path, point: str) -> None:
    print(f"seed={SEED}")
    figures = crash_point_run(tmp_path, point=point, repeats=3, seed=SEED)
    assert figures.kills == 3, f"{point} was never reached"
    assert figures.misses() == {}, figures.notes[:10]
