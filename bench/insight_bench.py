"""Trends and problems (issue 22) against floors measured in the same run.

- Postgres trends of the largest env over 12 weeks, in a backlog shaped like two years of use
  (``bench.insight_pg``), against one sequential ``count(*)`` of the events table: trends must
  read a small part of the events (the recent ones, the changes of the items that can be
  active), never all of them.
- JSONL problems view and trends, each against the dashboard of the same store and env, drawn
  after a write (the store keeps the last dashboard until something changes; trends and
  problems are computed per call, so they are timed as they are).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from bench import insight_pg
from bench.common import Report, interleaved, ratio_row
from bench.datagen import write_backlog
from bench.pg_bench import ADMIN_DSN, NOW, scratch_database
from services.router.clock import FixedClock
from services.router.domain.models import ItemInput
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.postgres import PostgresBacklogStore

SCRATCH_DB = os.environ.get("BENCH_INSIGHT_PG_DB", "backlog_bench_ins")  # a name of one's own for parallel runs
EVENTS_COUNT = "SELECT count(*) FROM backlog_events"
WEEKS = 12
# A router's pooled connection runs the same trends statements again and again: psycopg prepares a
# statement once it has run 5 times, and the server may switch to a generic plan 5 runs later.
# Timed after fewer calls, the row would miss a generic plan that is slow (issue 22: one took 60 ms).
STEADY_CALLS = 15


def bench_pg_trends(report: Report, dsn: str, *, items: int, repeat: int) -> None:
    store = PostgresBacklogStore(dsn, clock=FixedClock(NOW))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            events = conn.execute("SELECT count(*) FROM backlog_events").fetchone()
            env = conn.execute("SELECT env FROM backlog_items GROUP BY env ORDER BY count(*) DESC LIMIT 1").fetchone()
            assert events is not None and env is not None
            # The floor reads the whole table: no index may answer count(*) for it.
            for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
                conn.execute(f"SET {setting} = off")
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + EVENTS_COUNT).fetchall())
            assert "Seq Scan" in plan, plan
            started = time.perf_counter()
            rows = store.trends(env[0], None, WEEKS)  # cold: computes and stores the completed weeks
            cold = time.perf_counter() - started
            print(f"  (cold first trends call: {cold:.2f} s)", flush=True)
            assert sum(r["open_at_end"] for r in rows) > 0 and sum(r["closed"] for r in rows) > 0, rows
            for _ in range(2):  # warm the floor's buffers
                conn.execute(EVENTS_COUNT).fetchone()
            for _ in range(STEADY_CALLS):  # warm ours: buffers, and its plans as a running router has them
                store.trends(env[0], None, WEEKS)
            ours, floor = interleaved(lambda: store.trends(env[0], None, WEEKS),
                                      lambda: conn.execute(EVENTS_COUNT).fetchone(), repeat=repeat)
    finally:
        store.close()
    report.add(ratio_row(f"Postgres trends, {items} items / {events[0]} events, {WEEKS} weeks ({env[0]})", ours,
                         floor, goal_ratio=0.2, note="floor: SELECT count(*) of the events by a sequential scan; "
                         f"cold first call {cold:.2f} s"))


def run_pg(report: Report, *, items: int, repeat: int) -> None:
    with scratch_database(ADMIN_DSN, SCRATCH_DB) as dsn:
        started = time.perf_counter()
        insight_pg.fill(dsn, items)
        print(f"  (filled {items} items x 5 events in {time.perf_counter() - started:.1f} s)", flush=True)
        bench_pg_trends(report, dsn, items=items, repeat=repeat)


def run_jsonl(report: Report, *, items: int, repeat: int) -> None:
    """Problems and trends of prod (half the items) against its dashboard after a write."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-insight-"))
    try:
        write_backlog(workdir, items=items, versions=5, spread_weeks=52)
        store = JsonlBacklogStore(workdir, clock=FixedClock(NOW))
        counter = [0]

        def write() -> None:  # a change, so no cached dashboard is valid (jsonl_bench does the same)
            counter[0] += 1
            written = store.upsert(ItemInput(env="prod", service="svc-probe", category="arch_review",
                                             title=f"insight probe {counter[0]}", due_date="2026-10-01",
                                             dedupe_key=f"bench:insight:{counter[0]}"), actor="bench")
            assert written.action == "created", written.action

        assert store.problems("prod") and any(r["open_at_end"] for r in store.trends("prod", None, WEEKS))
        for name, fn in (("problems view", lambda: store.problems("prod")),
                         (f"trends ({WEEKS} weeks)", lambda: store.trends("prod", None, WEEKS))):
            fn()
            store.dashboard("prod")
            ours, floor = interleaved(fn, lambda: store.dashboard("prod"), repeat=repeat, setup=write)
            report.add(ratio_row(f"JSONL {name}, {items} items (prod)", ours, floor, goal_ratio=3.0,
                                 note="floor: the dashboard of the same store and env, after a write"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
