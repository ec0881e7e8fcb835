"""Open the signal store that matches the backlog store: once per runtime, passed in.

Signals live on the same backend as the backlog (DESIGN §8): the memory backlog gets a memory
signal store, JSONL gets ``ops/signals/`` and ``ops/risk/`` beside ``ops/backlog/``, Postgres
gets the ``signals``/``risk_snapshots`` tables, and the Auto backlog store (with a DSN) an
``AutoSignalStore`` that joins the same failover, so both are on Postgres or both on JSONL.
"""

from __future__ import annotations

from services.router.clock import Clock
from services.router.errors import ValidationFailed
from services.router.settings import Settings
from services.router.signals.store import MemorySignalStore, SignalStore
from services.router.stores.base import BacklogStore


def open_signal_store(settings: Settings, backlog: BacklogStore, clock: Clock) -> SignalStore:
    """The signal store for ``backlog``, at the locations ``settings`` name."""
    from services.router.stores.auto import AutoBacklogStore

    if isinstance(backlog, AutoBacklogStore):
        if backlog.failover.dsn:
            from services.router.signals.store_auto import AutoSignalStore

            return AutoSignalStore(backlog.failover.dsn, signals_dir=settings.signals_dir,
                                   risk_dir=settings.risk_dir, clock=clock, failover=backlog.failover,
                                   connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds)
        backend = "jsonl"  # no DSN: plain JSONL, nothing to fall back from
    else:
        backend = backlog.backend
    if backend == "memory":
        return MemorySignalStore()
    if backend == "jsonl":
        from services.router.signals.store_jsonl import JsonlSignalStore

        return JsonlSignalStore(settings.signals_dir, settings.risk_dir)
    if backend == "postgres":
        dsn = settings.postgres_dsn_value or getattr(backlog, "dsn", None)
        if not dsn:
            raise ValidationFailed("the Postgres signal store needs BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)",
                                   field="BACKLOG_POSTGRES_DSN")
        from services.router.signals.store_postgres import PostgresSignalStore

        return PostgresSignalStore(dsn, connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds,
                                   lazy=True)
    raise ValidationFailed(f"no signal store for backend {backend!r}", field="BACKLOG_BACKEND")
