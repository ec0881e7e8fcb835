"""Fixtures for the signals suite: a repo root in tmp, a runtime, and signal stores per backend.

Postgres: the session database of ``tests/pg_support.py`` (fresh per run on
``$BACKLOG_TEST_POSTGRES_DSN``, migrated by ``pg_schema`` — which includes the signals step —
and dropped at the end); without a server the Postgres cases skip, except under ``CI=true``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.router.clock import FixedClock
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.signals.store import MemorySignalStore, SignalStore
from services.router.signals.store_jsonl import JsonlSignalStore
from services.router.stores.memory import MemoryBacklogStore

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIGNAL_BACKENDS = ["memory", "jsonl", "postgres"]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repo root with the shipped policies: tests never touch the real ``ops/``."""
    (tmp_path / "config").mkdir()
    for name in ("risk_policy.yml", "backlog_policy.yml"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    return tmp_path


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(REPO_ROOT=root, BACKLOG_BACKEND="memory")


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[Runtime]:
    rt = build_runtime(settings, clock=clock, store=MemoryBacklogStore(clock=clock))
    yield rt
    rt.close()


Call = Callable[..., Any]


@pytest.fixture
def call(runtime: Runtime) -> Call:
    def run(tool: str, action: str, **params: Any) -> Any:
        return runtime.execute("tester", tool, action, params)

    return run


# -- Postgres: the shared session database of tests/pg_support.py (migrated by pg_schema) --------
SIGNAL_TABLES = "signals, risk_snapshots"


@pytest.fixture(params=SIGNAL_BACKENDS)
def signal_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SignalStoreFactory = Callable[[], SignalStore]


@pytest.fixture
def make_signal_store(signal_backend: str, root: Path, request: pytest.FixtureRequest) -> Iterator[SignalStoreFactory]:
    """Opens the backend again on the same data on each call (a reopen / a second process)."""
    opened: list[SignalStore] = []
    if signal_backend == "memory":
        shared = MemorySignalStore()

        def factory() -> SignalStore:
            return shared
    elif signal_backend == "jsonl":
        def factory() -> SignalStore:
            store = JsonlSignalStore(root / "ops" / "signals", root / "ops" / "risk")
            opened.append(store)
            return store
    else:
        import psycopg

        from services.router.signals.store_postgres import PostgresSignalStore
        from tests.pg_support import session_dsn

        dsn = session_dsn(request)  # skips locally without a server; fails under CI=true
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {SIGNAL_TABLES}")

        def factory() -> SignalStore:
            store = PostgresSignalStore(dsn)
            opened.append(store)
            return store
    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def signal_store(make_signal_store: SignalStoreFactory) -> SignalStore:
    return make_signal_store()
