from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.concurrent import run

SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))


def test_concurrent_writers_with_cleanup(tmp_path: Path) -> None:
    print(f"seed={SEED}")
    figures = run(tmp_path, writers=4, per_writer=120, cleanup_period=0.05, seed=SEED)
    assert figures.acknowledged >= 4 * 100
    assert figures.cleanups >= 2
    assert figures.misses() == {}, figures.notes[:5]
