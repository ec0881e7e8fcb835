"""The lean loop of ``bench.gen_lower_bound`` writes what the product writes, on each backend.

It is the floor of the "Weekly generation end to end" rows, and only a lower bound of the
action if it writes the same items the product's plan writes (same keys, in the same order,
carried over from the same items); fewer or other items would make the floor look cheaper.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.gen_lower_bound import lean_generation
from bench.gen_setup import ENV, LAST_WEEK, TODAY, WEEK, capped_policy, found, write_digest
from services.router.clock import FixedClock
from services.router.generation.facts import weekly_facts
from services.router.generation.run import generate, make_plan, plan_requests
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from tests.pg_support import fresh_database

CLOCK = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))


@contextmanager
def opened(backend: str, folder: Path) -> Iterator[BacklogStore]:
    if backend == "jsonl":
        store: BacklogStore = JsonlBacklogStore(folder, clock=CLOCK)
        yield store
        store.close()
        return
    from services.router.stores.postgres import PostgresBacklogStore

    with fresh_database("bb_bench_gen") as dsn:
        store = PostgresBacklogStore(dsn, clock=CLOCK)
        yield store
        store.close()


@pytest.mark.parametrize("backend", ["jsonl", "postgres"])
def test_lean_loop_writes_the_items_the_product_plan_writes(tmp_path: Path, backend: str) -> None:
    policy = capped_policy(25)
    digest = write_digest(tmp_path, WEEK, 40, seed=48)
    last_week = write_digest(tmp_path, LAST_WEEK, 40, seed=47)
    with opened(backend, tmp_path / "backlog") as store:
        generate(store, policy, weekly_facts(found(last_week), ENV), today=TODAY, actor="bench", dry_run=False)
        plan = make_plan(store, policy, weekly_facts(found(digest), ENV), today=TODAY)  # reads only
        wanted = [(str(r.item.dedupe_key), r.item.meta.get("carried_from")) for r in plan_requests(plan)]
        assert len(wanted) == 25 < len(plan.entries)  # the cap holds some back
        assert any(carried for _, carried in wanted)  # carry-over is part of what both do

        rows = lean_generation(store, digest, policy)

        assert [(r["dedupe_key"], store.get(r["id"])["meta"].get("carried_from")) for r in rows] == wanted
