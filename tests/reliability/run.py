"""``make reliability``: the full-count reliability suite, printed as a table of figures.

Every figure has a goal; the command exits non-zero when any figure misses it. The seed is
printed; re-run with ``RELIABILITY_SEED=<seed>`` to reproduce, and turn a failing seed into a
regression case in the pytest tier.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.reliability import concurrent, harness

Row = tuple[str, str, int, int]  # (scenario, figure, value, goal)


def kill9(tmp: Path, full: bool, seed: int) -> list[Row]:
    f = harness.kill9_run(tmp, items=10_000 if full else 600, kills=200 if full else 20, seed=seed)
    scenario = f"kill -9 during writes ({f.kills} kills, {f.acknowledged} acks)"
    return [(scenario, "acknowledged writes lost", f.lost, 0),
            (scenario, "reopen failures", f.reopen_failures, 0),
            (scenario, "records never written", f.never_written, 0),
            (scenario, "acknowledged events missing", f.events_missing, 0)]


def crash_points(tmp: Path, full: bool, seed: int) -> list[Row]:
    rows: list[Row] = []
    for point in harness.CRASH_POINTS:
        f = harness.crash_point_run(tmp / point.replace(":", "_"), point=point, repeats=20 if full else 3,
                                    seed=seed)
        scenario = f"crash at {point} (x{f.kills})"
        rows += [(scenario, "acknowledged writes lost", f.lost, 0),
                 (scenario, "temp files left", f.temp_files_left, 0),
                 (scenario, "reopen failures + unreadable lines", f.reopen_failures + f.unreadable_lines, 0)]
    return rows


def concurrency(tmp: Path, full: bool, seed: int) -> list[Row]:
    f = concurrent.run(tmp, writers=8 if full else 4, per_writer=500 if full else 120,
                       cleanup_period=2.0 if full else 0.05, seed=seed)
    scenario = f"concurrent writers ({f.acknowledged} acks, {f.cleanups} cleanups)"
    return [(scenario, "torn or interleaved lines", f.torn_or_interleaved_lines, 0),
            (scenario, "acknowledged writes lost", f.lost, 0),
            (scenario, "writes to a replaced file", f.writes_to_replaced_file, 0)]


SCENARIOS: dict[str, Callable[[Path, bool, int], list[Row]]] = {
    "kill9": kill9, "crash_points": crash_points, "concurrency": concurrency,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized counts")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    seed = int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 31)))
    print(f"seed={seed} ({'quick' if args.quick else 'full'} counts)")
    rows: list[Row] = []
    for name in args.only or list(SCENARIOS):
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"reliability-{name}-") as tmp:
            rows += SCENARIOS[name](Path(tmp), not args.quick, seed)
        print(f"  {name}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'figure':<36} {'value':>6} {'goal':>5}  result")
    misses = 0
    for scenario, figure, value, goal in rows:
        ok = value <= goal
        misses += not ok
        print(f"{scenario:<{width}}  {figure:<36} {value:>6} {goal:>5}  {'ok' if ok else 'MISS'}")
    print(f"{len(rows) - misses} passed, {misses} failed")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
