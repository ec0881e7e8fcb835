"""Growth curves (issue 22): the same action on a larger store against a smaller one, alternated.

A ratio against the same action at a smaller size says whether the cost grows as it should:

- the Postgres dashboard reads counters and the first rows of indexes, so 10x the rows may cost
  little more (goal <= 1.5x); both databases are filled by ``pg_bench.fill`` (SQL only, the same
  env shape) and kept side by side, so each round measures both;
- a JSONL cold open parses every line, so 5x the items may cost 5x, plus a margin (<= 5.5x),
  but no quadratic step.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

from bench import pg_bench
from bench.common import Report, interleaved, ratio_row
from bench.datagen import write_backlog
from bench.jsonl_bench import cold_open
from services.router.clock import FixedClock
from services.router.stores.postgres import PostgresBacklogStore

SCRATCH_PREFIX = "backlog_bench_ins_growth"


@contextmanager
def filled_store(rows: int) -> Iterator[PostgresBacklogStore]:
    with ExitStack() as stack:
        dsn = stack.enter_context(pg_bench.scratch_database(pg_bench.ADMIN_DSN, f"{SCRATCH_PREFIX}_{rows}"))
        started = time.perf_counter()
        pg_bench.fill(dsn, rows)
        print(f"  (filled {rows} rows in {time.perf_counter() - started:.1f} s)", flush=True)
        store = PostgresBacklogStore(dsn, clock=FixedClock(pg_bench.NOW))
        stack.callback(store.close)
        yield store


def largest_env(store: PostgresBacklogStore) -> str:
    """As ``pg_bench.bench_dashboard`` picks it: the env with the most items."""
    with psycopg.connect(store.dsn) as conn:
        row = conn.execute("SELECT env FROM backlog_items GROUP BY env ORDER BY count(*) DESC LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


def run_pg(report: Report, *, small: int, big: int, repeat: int) -> None:
    """The dashboard of the largest env at ``big`` rows against ``small`` rows."""
    with filled_store(small) as small_store, filled_store(big) as big_store:
        env = largest_env(small_store)
        assert largest_env(big_store) == env
        for _ in range(2):  # warm both (buffers, plans)
            small_store.dashboard(env)
            big_store.dashboard(env)
        ours, floor = interleaved(lambda: big_store.dashboard(env), lambda: small_store.dashboard(env),
                                  repeat=repeat)
    report.add(ratio_row(f"Growth: Postgres dashboard, {big} rows vs {small} ({env})", ours, floor,
                         goal_ratio=1.5, note="the same query at the smaller size"))


def run_jsonl(report: Report, *, small: int, big: int, versions: int, repeat: int) -> None:
    """A cold open of ``big`` items against one of ``small`` items (the same shape)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    try:
        write_backlog(workdir / "small", items=small, versions=versions)
        write_backlog(workdir / "big", items=big, versions=versions)
        ours, floor = interleaved(lambda: cold_open(workdir / "big"), lambda: cold_open(workdir / "small"),
                                  repeat=repeat)
        report.add(ratio_row(f"Growth: JSONL cold open, {big} items vs {small}", ours, floor,
                             goal_ratio=round(5.5 * big / small / 5, 2),
                             note="5.5x for 5x the items: linear, no quadratic step"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
