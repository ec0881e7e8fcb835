"""Pick the backend named by ``BACKLOG_BACKEND`` (auto, postgres, jsonl, memory)."""

from __future__ import annotations

import logging

from services.router.clock import Clock, default_clock
from services.router.errors import ValidationFailed
from services.router.settings import Settings
from services.router.stores.base import BacklogStore

log = logging.getLogger("backlog_store")


def open_store(settings: Settings, *, clock: Clock | None = None) -> BacklogStore:
    clock = clock or default_clock(settings)
    backend = settings.backlog_backend
    if backend == "memory":
        from services.router.stores.memory import MemoryBacklogStore

        store: BacklogStore = MemoryBacklogStore(clock=clock)
    elif backend == "jsonl":
        from services.router.stores.jsonl import JsonlBacklogStore

        store = JsonlBacklogStore(settings.jsonl_dir, clock=clock)
    elif backend == "postgres":
        from services.router.stores.postgres import PostgresBacklogStore

        dsn = settings.postgres_dsn_value
        if not dsn:
            raise ValidationFailed(
                "BACKLOG_BACKEND=postgres needs BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)",
                field="BACKLOG_POSTGRES_DSN",
            )
        store = PostgresBacklogStore(dsn, clock=clock, connect_timeout=settings.backlog_pg_connect_timeout_seconds)
    elif backend == "auto":
        from services.router.stores.auto import AutoBacklogStore

        store = AutoBacklogStore(settings, clock=clock)
    else:  # pragma: no cover - Settings validates the literal
        raise ValidationFailed(f"unknown BACKLOG_BACKEND {backend!r}", field="BACKLOG_BACKEND")
    if backend != "auto":
        log.info("using %s", type(store).__name__)
    return store
