"""The lower-bound loop of ``bench.gen_lower_bound`` writes what the product writes.

Its figure is only a lower bound of generation's own work if it writes the same items the
product's plan writes (same keys, same count); fewer or other items would make it look cheaper.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.gen_bench import ENV, TODAY, WEEK, capped_policy, found, write_digest
from bench.gen_lower_bound import lean_generation
from services.router.clock import FixedClock
from services.router.generation.facts import weekly_facts
from services.router.generation.run import make_plan, plan_requests
from services.router.stores.jsonl import JsonlBacklogStore


def test_lean_loop_writes_the_items_the_product_plan_writes(tmp_path: Path) -> None:
    policy = capped_policy(25)
    digest = write_digest(tmp_path, WEEK, 40, seed=48)
    clock = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    probe = JsonlBacklogStore(tmp_path / "probe", clock=clock)
    plan = make_plan(probe, policy, weekly_facts(found(digest), ENV), today=TODAY)
    probe.close()
    wanted = [str(r.item.dedupe_key) for r in plan_requests(plan)]
    assert len(wanted) == 25 < len(plan.entries)  # the cap holds some back

    store = JsonlBacklogStore(tmp_path / "lean", clock=clock)
    rows = lean_generation(store, digest, policy)

    assert [r["dedupe_key"] for r in rows] == wanted
    assert all(store.get(r["id"]) is not None for r in rows)
    store.close()
