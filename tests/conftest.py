"""Shared fixtures: a settable clock and one store per backend for the contract suite.

``BACKENDS`` lists the backends store-backed tests run on; the store contract suite adds
``AUTO_BACKENDS``: the Auto store both healthy (on Postgres) and degraded (its DSN names a port
nothing listens on, so it serves from its JSONL fallback and journals every write). Postgres
support (a fresh database per test session on ``$BACKLOG_TEST_POSTGRES_DSN``) lives in
``tests/pg_support.py``.
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
AUTO_BACKENDS = ["auto", "auto-degraded"]
UNREACHABLE_DSN = "postgresql://backlog:pw@127.0.0.1:1/backlog"

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
    elif backend == "postgres":
        from tests.pg_support import postgres_store_factory

        factory = postgres_store_factory(request, clock, opened)
    else:
        factory = auto_store_factory(request, backend, tmp_path, clock, opened)
    yield factory
    for store in opened:
        store.close()


def auto_store_factory(request: pytest.FixtureRequest, backend: str, tmp_path: Path, clock: FixedClock,
                       opened: list[BacklogStore]) -> StoreFactory:
    from services.router.settings import Settings
    from services.router.stores.auto import AutoBacklogStore
    from tests.pg_support import session_dsn, truncate

    if backend == "auto":
        dsn = session_dsn(request)
        truncate(dsn)
    else:
        dsn = UNREACHABLE_DSN
    settings = Settings(BACKLOG_POSTGRES_DSN=dsn, POSTGRES_DSN=None, BACKLOG_JSONL_DIR=str(tmp_path / "backlog"),
                        BACKLOG_PG_RETRY_SECONDS=3600, BACKLOG_PG_CONNECT_TIMEOUT_SECONDS=1)

    def factory() -> BacklogStore:
        store = AutoBacklogStore(settings, clock=clock)
        assert store.degraded is (backend == "auto-degraded")
        opened.append(store)
        return store

    return factory


@pytest.fixture
def store(make_store: StoreFactory) -> BacklogStore:
    return make_store()


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> ThrowawayCluster:
    """The session's throwaway Postgres cluster (started on first use; tests may stop it)."""
    return session_cluster(request)
