"""Trends stay exact when completed weeks are kept (the Postgres rollup, schema step 9).

Every backend is driven beside a memory store (whose trends the contract suite checks against
its model) with the same operations at the same clock, and must give the same rows after each
kind of change that rewrites a completed week: a backdated write, a second store (router)
writing, a cleanup, the clock moved back, an out-of-order status change. The Postgres-only tests
check that the rollup is reused (not recomputed) when nothing invalidates it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.stores.base import BacklogStore
from services.router.stores.memory import MemoryBacklogStore
from tests.conftest import AUTO_BACKENDS, BACKENDS
from tests.factories import item

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)  # Thursday of 2026-W48
SCOPES = [("prod", None, 12), ("prod", "gateway", 6), (None, None, 9)]


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Twin:
    """The same operations on a store under test and on a memory store, ids mapped by key."""

    def __init__(self, store: BacklogStore, clock: FixedClock) -> None:
        self.store, self.clock, self.memory = store, clock, MemoryBacklogStore(clock=clock)
        self.ids: dict[str, tuple[str, str]] = {}

    def create(self, key: str, *, via: BacklogStore | None = None, service: str = "gateway",
               priority: str = "P1", due: date | None = None) -> None:
        fields = {"priority": priority, **({"due_date": due} if due else {})}
        ours = (via or self.store).upsert(item(key, service=service, **fields), actor="t").item["id"]
        theirs = self.memory.upsert(item(key, service=service, **fields), actor="t").item["id"]
        self.ids[key] = (str(ours), str(theirs))

    def move(self, key: str, status: str, *, via: BacklogStore | None = None) -> None:
        ours, theirs = self.ids[key]
        (via or self.store).set_status(ours, Status(status), actor="t")
        self.memory.set_status(theirs, Status(status), actor="t")

    def due(self, key: str, due: date | None) -> None:
        ours, theirs = self.ids[key]
        self.store.set_due_date(ours, due, actor="t")
        self.memory.set_due_date(theirs, due, actor="t")

    def check(self, store: BacklogStore | None = None) -> None:
        for env, service, weeks in SCOPES:
            expected = self.memory.trends(env, service, weeks)
            assert (store or self.store).trends(env, service, weeks) == expected, (env, service, weeks)


def weeks_of_work(twin: Twin, *, start: datetime, weeks: int) -> None:
    """A few items a week, some closed, some due dates moved; ends with the clock at NOW."""
    for week in range(weeks):
        twin.clock.set(start + timedelta(weeks=week, days=1, hours=9))
        for n in range(3):
            key = f"w{week}-{n}"
            twin.create(key, service=["gateway", "auth"][n % 2], priority=["P0", "P1", "P2"][n],
                        due=twin.clock.now().date() + timedelta(days=3 * n - 2))
        twin.clock.advance(days=2)
        twin.move(f"w{week}-0", "done")
        twin.move(f"w{week}-1", "in_progress")
        if week:
            twin.due(f"w{week - 1}-2", twin.clock.now().date() + timedelta(days=1))
            twin.move(f"w{week - 1}-1", "canceled")
    twin.clock.set(NOW)


@pytest.fixture
def twin(store: BacklogStore, clock: FixedClock) -> Twin:
    pair = Twin(store, clock)
    weeks_of_work(pair, start=datetime(2026, 9, 28, tzinfo=UTC), weeks=9)
    pair.check()  # the first call (on Postgres: computes and stores the completed weeks)
    return pair


def test_writes_in_the_current_week_show_and_completed_weeks_stay(twin: Twin) -> None:
    twin.check()
    twin.clock.advance(hours=1)
    twin.create("now-1", priority="P0", due=date(2026, 11, 20))
    twin.move("w8-2", "done")
    twin.move("w2-0", "open")  # reopened: open at this week's end, not at any earlier one
    twin.check()


def test_a_backdated_write_rewrites_the_completed_weeks_it_falls_in(twin: Twin) -> None:
    twin.clock.set(datetime(2026, 10, 14, 10, tzinfo=UTC))  # a replayed journal, a clock behind
    twin.create("late-1", priority="P0", due=date(2026, 10, 1))
    twin.clock.advance(hours=1)
    twin.create("late-2")
    twin.clock.advance(days=1)
    twin.move("late-2", "done")
    twin.clock.set(NOW)
    twin.check()


def test_another_store_writing_invalidates_what_this_one_kept(twin: Twin,
                                                              make_store: Callable[[], BacklogStore]) -> None:
    other = make_store()  # a second router on the same data
    twin.clock.set(datetime(2026, 10, 20, 10, tzinfo=UTC))
    twin.create("other-1", via=other, priority="P0")
    twin.clock.set(NOW)
    twin.check(other)
    twin.check()


def test_cleanup_removes_closed_items_from_every_kept_week(twin: Twin, backend: str) -> None:
    twin.clock.set(NOW + timedelta(days=30))
    if backend == "auto-degraded":  # cleanup waits for Postgres: nothing removed, the weeks unchanged
        assert twin.store.cleanup(40) == 0
        twin.check()
        return
    assert twin.store.cleanup(40) == twin.memory.cleanup(40) > 0
    twin.check()


def test_a_clock_moved_back_serves_no_week_that_has_not_ended(twin: Twin) -> None:
    twin.clock.set(datetime(2026, 11, 18, 12, tzinfo=UTC))  # W47 has not ended at this moment
    twin.check()
    twin.create("back-1", priority="P0", due=date(2026, 11, 1))
    twin.move("w6-2", "done")
    twin.check()
    twin.clock.set(NOW)
    twin.check()


def test_a_clock_behind_the_data_counts_the_current_week_in_full(twin: Twin) -> None:
    twin.clock.set(datetime(2026, 11, 18, 12, tzinfo=UTC))  # W47 has not ended; W48's changes lie after it
    twin.check()  # (on Postgres: W36 computed and stored, the kept weeks from W37 on still exact)
    twin.create("behind-1", priority="P0", due=date(2026, 11, 1))  # after W46's end: no kept week stale
    twin.check()  # the current week: the items active at its end, not the items active now


# -- Postgres: the rollup itself -----------------------------------------------------------------
def dsn_of(store: BacklogStore) -> str:
    dsn = getattr(store, "dsn", None)
    assert isinstance(dsn, str), "the rollup tests run on the Postgres store only"
    return dsn


def rollup(store: BacklogStore) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn_of(store), autocommit=True) as conn:
        return conn.execute("SELECT env, service, week_start, computed_at FROM backlog_trend_weeks "
                            "ORDER BY env, service, week_start").fetchall()


@pytest.mark.parametrize("backend", ["postgres"])
def test_kept_weeks_are_reused_until_a_write_rewrites_them(twin: Twin) -> None:
    kept = rollup(twin.store)
    # each scope's completed weeks: 11 of 12, 5 of 6, 8 of 9
    assert len(kept) == 11 + 5 + 8
    twin.clock.advance(hours=2)
    twin.create("now-2", priority="P0")
    twin.check()
    assert rollup(twin.store) == kept  # a write this week recomputes no completed week
    twin.clock.set(datetime(2026, 11, 10, 9, tzinfo=UTC))
    twin.create("late-3")
    twin.clock.set(NOW)
    twin.check()
    again = rollup(twin.store)
    assert [r[:3] for r in again] == [r[:3] for r in kept]
    changed = {r[2] for r, before in zip(again, kept, strict=True) if r[3] != before[3]}
    assert changed and min(changed) >= datetime(2026, 11, 9, tzinfo=UTC)  # from the backdated week on
    twin.check()
    assert rollup(twin.store) == again  # recomputed once: each row is judged by its own mark


@pytest.mark.parametrize("backend", ["postgres"])
def test_an_out_of_order_status_change_recomputes_every_kept_week(twin: Twin) -> None:
    kept = rollup(twin.store)
    # w6-1 was canceled on 2026-11-19; reopened at 2026-11-17 (after W46's end), this change
    # comes first in time order, so its `from` is what W46's end reads (domain.trends).
    twin.clock.set(datetime(2026, 11, 17, 8, tzinfo=UTC))
    twin.move("w6-1", "open")
    twin.clock.set(NOW)
    twin.store.trends("prod", None, 12)
    again = {r[:3]: r[3] for r in rollup(twin.store)}
    assert all(again[r[:3]] != r[3] for r in kept if r[:2] == ("prod", ""))


@pytest.mark.parametrize("backend", ["postgres"])
def test_emptying_the_events_empties_the_rollup(twin: Twin) -> None:
    assert rollup(twin.store)
    with psycopg.connect(dsn_of(twin.store), autocommit=True) as conn:
        conn.execute("TRUNCATE backlog_items, backlog_events CASCADE")
    assert rollup(twin.store) == []


@pytest.mark.parametrize("backend", ["postgres"])
def test_kept_weeks_move_to_a_new_mark_after_many_writes(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.router.stores import pg_trend_rollup

    monkeypatch.setattr(pg_trend_rollup, "ADVANCE_AFTER", 2)
    with psycopg.connect(dsn_of(twin.store), autocommit=True) as conn:
        before = conn.execute("SELECT max(events_mark) FROM backlog_trend_weeks").fetchone()
        twin.clock.advance(hours=1)
        for n in range(3):
            twin.create(f"many-{n}")
        twin.check()
        marks = conn.execute("SELECT min(events_mark), max(events_mark) FROM backlog_trend_weeks").fetchone()
        newest = conn.execute("SELECT max(seq) FROM backlog_events").fetchone()
    assert before is not None and marks is not None and newest is not None
    assert marks[0] == marks[1] == newest[0] > before[0]  # every scope's rows
    twin.clock.set(datetime(2026, 11, 3, 9, tzinfo=UTC))
    twin.create("late-after-advance")  # still seen after the mark moved
    twin.clock.set(NOW)
    twin.check()


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_warm_call_is_one_statement(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept weeks still exact: their rows, the events since their marks and the current week come
    in one statement (one round trip, one snapshot)."""
    twin.clock.advance(hours=1)
    twin.create("warm-1", priority="P0")  # a write this week: the kept weeks stay exact
    kept = rollup(twin.store)
    sent: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted(cur: psycopg.Cursor[object], query: object, *args: object, **kwargs: object) -> object:
        if str(query).strip():  # (the pool's ping of an idle connection is the empty query)
            sent.append(str(query))
        return execute(cur, query, *args, **kwargs)  # type: ignore[arg-type]

    def counted_many(cur: psycopg.Cursor[object], query: object, *args: object, **kwargs: object) -> None:
        sent.append(str(query))
        executemany(cur, query, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    monkeypatch.setattr(psycopg.Cursor, "executemany", counted_many)
    for env, service, weeks in SCOPES:
        sent.clear()
        assert twin.store.trends(env, service, weeks) == twin.memory.trends(env, service, weeks)
        assert len(sent) == 1, (env, service, sent)
    monkeypatch.undo()
    assert rollup(twin.store) == kept
