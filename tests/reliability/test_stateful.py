"""Stateful property test: random operation sequences on a backend match a plain model.

Every backend: memory, JSONL, Postgres (a scratch database per test, dropped afterwards) and
the Auto store on that database. A reopen on Postgres closes the pool and opens a new one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from services.router.clock import FixedClock, iso_z
from services.router.domain.enums import ACTIVE_STATUSES, Status
from services.router.domain.queries import ItemQuery
from services.router.domain.transitions import ALLOWED_MOVES
from services.router.errors import TransitionRefused
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.memory import MemoryBacklogStore
from tests.conftest import NOW
from tests.factories import item

KEYS = st.sampled_from([f"k{i}" for i in range(5)])
TITLES = st.sampled_from(["alpha", "beta", "gamma"])
OWNERS = st.one_of(st.none(), st.sampled_from(["alice", "bob"]))


def machine_for(open_store: Callable[[FixedClock], BacklogStore]) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.clock = FixedClock(NOW)
            self.store = open_store(self.clock)
            self.model: dict[str, dict[str, Any]] = {}

        @rule(key=KEYS, title=TITLES, owner=OWNERS)
        def upsert(self, key: str, title: str, owner: str | None) -> None:
            result = self.store.upsert(item(key, title=title, owner=owner), actor="m")
            m = self.model.get(key)
            if m is None:
                self.model[key] = {"title": title, "owner": owner or "oncall", "status": "open", "events": 1,
                                   "updated_at": self.clock.now()}
                assert result.action == "created"
                return
            changed = m["title"] != title or (owner is not None and owner != m["owner"])
            assert result.action == ("updated" if changed else "unchanged")
            if changed:
                m.update(title=title, owner=owner or m["owner"], updated_at=self.clock.now())
                m["events"] += 1

        @rule(key=KEYS, status=st.sampled_from(list(Status)))
        def set_status(self, key: str, status: Status) -> None:
            target = status
            m = self.model.get(key)
            if m is None:
                return
            rec = self.store.get_by_dedupe_key(key)
            assert rec is not None
            current = Status(m["status"])
            if current == target:
                assert self.store.set_status(rec["id"], target, actor="m").action == "unchanged"
            elif target in ALLOWED_MOVES[current]:
                self.store.set_status(rec["id"], target, actor="m")
                m.update(status=target.value, updated_at=self.clock.now())
                m["events"] += 1
            else:
                with pytest.raises(TransitionRefused):
                    self.store.set_status(rec["id"], target, actor="m")

        @rule(key=KEYS)
        def comment(self, key: str) -> None:
            m = self.model.get(key)
            if m is None:
                return
            rec = self.store.get_by_dedupe_key(key)
            assert rec is not None
            self.store.add_comment(rec["id"], "note", actor="m")
            m["events"] += 1

        @rule(days=st.integers(min_value=0, max_value=40), retention=st.integers(min_value=0, max_value=60))
        def cleanup(self, days: int, retention: int) -> None:
            self.clock.advance(days=days)
            cutoff = self.clock.now() - timedelta(days=retention)
            expired = [k for k, m in self.model.items()
                       if m["status"] not in ACTIVE_STATUSES and m["updated_at"] < cutoff]
            assert self.store.cleanup(retention) == len(expired)
            for key in expired:
                del self.model[key]

        @rule()
        def reopen(self) -> None:
            self.store = open_store(self.clock)

        @invariant()
        def matches_model(self) -> None:
            if not hasattr(self, "store"):
                return
            records = self.store.list(ItemQuery(limit=500)).items
            assert {r["dedupe_key"] for r in records} == set(self.model)
            for rec in records:
                m = self.model[rec["dedupe_key"]]
                assert (rec["title"], rec["owner"], rec["status"], rec["updated_at"]) == (
                    m["title"], m["owner"], m["status"], iso_z(m["updated_at"]))
                assert len(self.store.events(rec["id"])) == m["events"]

    return StoreMachine


def memory_backend() -> Callable[[FixedClock], BacklogStore]:
    holder: dict[int, MemoryBacklogStore] = {}

    def open_store(clock: FixedClock) -> BacklogStore:
        # "reopen" of the memory store is the same object (it has nothing to reload)
        key = id(clock)
        if key not in holder:
            holder.clear()
            holder[key] = MemoryBacklogStore(clock=clock)
        return holder[key]

    return open_store


def jsonl_backend(base: Path) -> Callable[[FixedClock], BacklogStore]:
    dirs: dict[int, Path] = {}

    def open_store(clock: FixedClock) -> BacklogStore:
        key = id(clock)
        if key not in dirs:
            dirs[key] = Path(tempfile.mkdtemp(prefix="stateful-", dir=base))
        return JsonlBacklogStore(dirs[key], clock=clock)

    return open_store


class PostgresBackend:
    """Opens a store on one scratch database; a new hypothesis example (a new clock) starts
    from empty tables, and a reopen closes the previous store's pool first."""

    def __init__(self, dsn: str, jsonl_base: Path | None = None) -> None:
        self.dsn, self.jsonl_base = dsn, jsonl_base
        self.current: BacklogStore | None = None
        self.clock_id = 0

    def __call__(self, clock: FixedClock) -> BacklogStore:
        from services.router.settings import Settings
        from services.router.stores.auto import AutoBacklogStore
        from services.router.stores.postgres import PostgresBacklogStore
        from tests.pg_support import truncate

        self.close()
        if id(clock) != self.clock_id:
            self.clock_id = id(clock)
            truncate(self.dsn)
        if self.jsonl_base is None:
            self.current = PostgresBacklogStore(self.dsn, clock=clock)
        else:
            jsonl = tempfile.mkdtemp(prefix="stateful-auto-", dir=self.jsonl_base)
            self.current = AutoBacklogStore(Settings(BACKLOG_POSTGRES_DSN=self.dsn, POSTGRES_DSN=None,
                                                     BACKLOG_JSONL_DIR=jsonl), clock=clock)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            close = getattr(self.current, "close", None)
            if close is not None:
                close()
            self.current = None


@pytest.fixture
def scratch_dsn() -> Iterator[str]:
    from tests.pg_support import fresh_database

    with fresh_database("bb_stateful") as dsn:
        yield dsn


SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PG_SETTINGS = settings(SETTINGS, max_examples=15)  # a round trip per call: fewer examples, same depth


@pytest.mark.parametrize("backend", ["memory", "jsonl"])
def test_store_matches_model(backend: str, tmp_path: Path) -> None:
    factory = memory_backend() if backend == "memory" else jsonl_backend(tmp_path)
    run_state_machine_as_test(machine_for(factory), settings=SETTINGS)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres", "auto"])
def test_store_matches_model_on_postgres(backend: str, scratch_dsn: str, tmp_path: Path) -> None:
    factory = PostgresBackend(scratch_dsn, tmp_path if backend == "auto" else None)
    try:
        run_state_machine_as_test(machine_for(factory), settings=PG_SETTINGS)
    finally:
        factory.close()
