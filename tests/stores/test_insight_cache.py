"""Trends and problems asked for again and again while the backlog changes, on every backend.

The memory and JSONL stores keep the rows of earlier calls and bring them up to date as items
change (``stores/insight_cache.py``): every answer must still equal the model of
``test_trends_contract`` — after writes in the current week, a write with the clock moved back,
a cleanup, lines another process appended, and the date moving on.
"""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.router.clock import FixedClock
from services.router.stores import insight_cache
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from tests.conftest import StoreFactory
from tests.stores.test_trends_contract import ACTIVE, Model, history

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)  # Thursday of 2026-W48
SCOPES = [("prod", None, 12), ("prod", "gateway", 5), (None, None, 9), ("staging", None, 3), ("prod", "auth", 1)]
SERVICES = ["gateway", "payments", "auth", "nowhere"]


def check(reader: BacklogStore, model: Model) -> None:
    """Every scope's trends and every env's and service's problems equal the model's."""
    for env, service, weeks in SCOPES:
        assert reader.trends(env, service, weeks) == model.trends(env, service, weeks), (env, service, weeks)
    for env in ("prod", "staging"):
        expected = model.problems(env)
        assert reader.problems(env) == expected, env
        for service in SERVICES:
            assert reader.problems(env, service) == [p for p in expected if p["service"] == service], (env, service)


def close(model: Model, item_id: str) -> None:
    if model.items[item_id].now[0] in ACTIVE:
        model.move(item_id, "done")


def backlog(store: BacklogStore, clock: FixedClock) -> Model:
    """Five weeks of history (through 2026-11-08), then the clock at ``NOW``: a write dated
    between the two is a write with the clock moved back into weeks already counted, and the
    model follows it (it is no earlier than the items' own history)."""
    model = Model(store, clock)
    history(model, clock, start=datetime(2026, 10, 5, tzinfo=UTC), weeks=5, seed=22)
    clock.set(NOW)
    return model


def test_every_change_in_the_current_week_shows_in_the_next_call(store: BacklogStore, clock: FixedClock) -> None:
    model = backlog(store, clock)
    check(store, model)  # the rows are now kept
    ids = sorted(model.items)
    live = [i for i in ids if model.items[i].now[0] in ACTIVE]
    steps = [
        lambda: model.create("platform_backlog:2026-W48:prod:gateway:new", service="gateway", priority="P0",
                             due=date(2026, 11, 20)),
        lambda: model.create("platform_backlog:2026-W40:prod:billing:old", service="billing", category="security"),
        lambda: close(model, ids[0]),
        lambda: model.move(ids[0], "open"),
        lambda: model.move(ids[1], "open"),
        lambda: model.due(live[2], date(2026, 11, 1)),
        lambda: model.due(live[3], None),
        lambda: model.accept(live[4], date(2026, 12, 3), restart=date(2026, 12, 10)),
        lambda: model.unaccept(live[4]),
        lambda: model.owner(live[5], "team-b"),
        lambda: store.add_comment(live[6], "looked at it", actor="t"),
    ]
    for step in steps:
        clock.advance(minutes=13)
        step()
        check(store, model)
    for item_id in ids:  # closing every item of a lineage takes its row away
        close(model, item_id)
    check(store, model)
    assert store.problems("prod", "gateway") == model.problems("prod")[:1] and store.problems("staging") == []


def test_a_write_with_the_clock_moved_back_changes_the_weeks_it_lands_in(store: BacklogStore,
                                                                        clock: FixedClock) -> None:
    model = backlog(store, clock)
    check(store, model)
    ids = sorted(model.items)
    clock.set(datetime(2026, 11, 11, 9, tzinfo=UTC))  # W46: completed weeks whose rows were kept
    model.create("platform_backlog:2026-W46:prod:auth:late", service="auth", priority="P0", due=date(2026, 11, 12))
    close(model, next(i for i in ids if model.items[i].now[0] in ACTIVE))
    clock.advance(days=7)  # W47
    model.due(ids[-1], date(2026, 10, 1))
    model.accept(ids[-2], date(2026, 11, 30))
    clock.set(NOW)
    check(store, model)
    assert store.trends("prod", "auth", 12) == model.trends("prod", "auth", 12)


def test_cleanup_takes_removed_items_out_of_every_week(store: BacklogStore, clock: FixedClock) -> None:
    model = backlog(store, clock)
    clock.set(datetime(2026, 11, 10, 9, tzinfo=UTC))
    for item_id in sorted(model.items)[:12]:
        close(model, item_id)
    clock.set(NOW)
    check(store, model)
    assert store.cleanup(14) > 0  # closed before 2026-11-12
    model.items = {k: v for k, v in model.items.items() if store.get(k) is not None}
    model.closings = [(k, at) for k, at in model.closings if k in model.items]
    check(store, model)
    model.create("platform_backlog:2026-W48:prod:gateway:after", service="gateway")
    check(store, model)


def test_the_date_moving_on_moves_weeks_open_overdue_and_the_weeks(store: BacklogStore, clock: FixedClock) -> None:
    model = backlog(store, clock)
    model.create("platform_backlog:2026-W48:prod:payments:soon", service="payments", due=date(2026, 11, 27))
    check(store, model)
    for days in (1, 1, 2, 3, 7, 30):  # Friday (overdue from today), the weekend, next weeks
        clock.advance(days=days)
        check(store, model)


@pytest.mark.parametrize("backend", ["jsonl"])
def test_lines_another_process_appends_reach_the_kept_rows(make_store: StoreFactory, clock: FixedClock) -> None:
    reader, writer = make_store(), make_store()
    model = backlog(writer, clock)
    check(reader, model)
    ids = sorted(model.items)
    clock.advance(hours=1)
    model.create("platform_backlog:2026-W48:prod:gateway:other", service="gateway", priority="P0")
    close(model, ids[0])
    check(reader, model)
    clock.set(datetime(2026, 11, 11, 9, tzinfo=UTC))  # the other process's clock is behind
    model.create("platform_backlog:2026-W46:prod:auth:behind", service="auth", due=date(2026, 11, 12))
    model.move(ids[1], "open")
    clock.set(NOW)
    check(reader, model)
    clock.advance(days=1)
    assert writer.cleanup(1) > 0  # compacts the files: the reader loads them again
    model.items = {k: v for k, v in model.items.items() if writer.get(k) is not None}
    model.closings = [(k, at) for k, at in model.closings if k in model.items]
    check(reader, model)
    reader_model = Model(reader, clock)  # and the reader's own writes reach the writer's answers
    reader_model.items, reader_model.closings, reader_model.owners = model.items, model.closings, model.owners
    reader_model.create("platform_backlog:2026-W48:prod:payments:reader", service="payments", due=date(2026, 11, 1))
    check(writer, model)
    check(reader, model)


def test_a_new_week_starts_empty_and_the_old_weeks_keep_their_rows(store: BacklogStore, clock: FixedClock) -> None:
    model = backlog(store, clock)
    check(store, model)
    clock.set(datetime(2026, 11, 30, 0, 0, tzinfo=UTC))  # Monday of W49: a new run of weeks
    check(store, model)
    rows = store.trends("prod", None, 2)
    assert rows[-1]["week"] == "2026-W49" and rows[-1]["opened"] == rows[-1]["closed"] == 0
    model.create("platform_backlog:2026-W49:prod:gateway:monday", service="gateway", due=date(2026, 11, 29))
    clock.advance(days=2)
    check(store, model)


@pytest.mark.parametrize("backend", ["memory", "jsonl"])
def test_a_bulk_change_recomputes_instead(store: BacklogStore, clock: FixedClock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a share of the items, kept trends are dropped and recomputed on the next call."""
    monkeypatch.setattr(insight_cache, "BULK_CHANGES", 0)
    model = backlog(store, clock)
    check(store, model)
    clock.advance(hours=1)
    for n in range(8):
        model.create(f"platform_backlog:2026-W48:prod:gateway:bulk{n}", service="gateway", due=date(2026, 11, 2))
    check(store, model)
    close(model, sorted(model.items)[-1])
    check(store, model)


def test_a_dropped_store_is_freed_at_once_with_its_kept_rows(tmp_path: Path, clock: FixedClock) -> None:
    """The index and its insight cache hold no reference cycle: a JSONL store dropped after
    trends were asked for frees its whole index as the last reference goes, not at some later
    full collection (a router reopening stores, or a benchmark, would otherwise pile them up)."""
    store = JsonlBacklogStore(tmp_path / "backlog", clock=clock)
    model = backlog(store, clock)
    check(store, model)  # the cache is active: problems and trends entries kept
    index = weakref.ref(store.index)
    store.close()
    gc.disable()
    try:
        del store, model
        assert index() is None
    finally:
        gc.enable()
