"""Shared fixtures: a settable clock and one store per backend for the contract suite.

``BACKENDS`` lists every backend the contract tests run on. Postgres support (a fresh
database per test session on ``$BACKLOG_TEST_POSTGRES_DSN``) lives in ``tests/pg_support.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.router.clock import FixedClock
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.memory import MemoryBacklogStore
from tests.pg_support import ThrowawayCluster, session_cluster

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BACKENDS = ["memory", "jsonl", "postgres"]

StoreFactory = Callable[[], BacklogStore]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, tmp_path: Path, clock: FixedClock, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """A factory that opens the backend again on the same data (a reopen / second process)."""
    opened: list[BacklogStore] = []

    if backend == "memory":
        shared = MemoryBacklogStore(clock=clock)

        def factory() -> BacklogStore:
            return shared
    elif backend == "jsonl":
        def factory() -> BacklogStore:
            store = JsonlBacklogStore(tmp_path / "backlog", clock=clock)
            opened.append(store)
            return store
    else:
        from tests.pg_support import postgres_store_factory

        factory = postgres_store_factory(request, clock, opened)
    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> BacklogStore:
    return make_store()


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> ThrowawayCluster:
    """The session's throwaway Postgres cluster (started on first use; tests may stop it)."""
    return session_cluster(request)
