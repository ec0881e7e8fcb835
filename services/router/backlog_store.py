"""The runbook's import path (``from services.router.backlog_store import JsonlBacklogStore``)."""

from __future__ import annotations

from typing import Any

from services.router.stores.base import BacklogStore, UpsertRequest, WriteResult
from services.router.stores.factory import open_store
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.memory import MemoryBacklogStore

__all__ = [
    "AutoBacklogStore",  # noqa: F822 - loaded lazily by __getattr__
    "BacklogStore",
    "JsonlBacklogStore",
    "MemoryBacklogStore",
    "PostgresBacklogStore",  # noqa: F822 - loaded lazily by __getattr__
    "UpsertRequest",
    "WriteResult",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # Postgres and Auto import psycopg; load them only when asked for.
    if name == "PostgresBacklogStore":
        from services.router.stores.postgres import PostgresBacklogStore

        return PostgresBacklogStore
    if name == "AutoBacklogStore":
        from services.router.stores.auto import AutoBacklogStore

        return AutoBacklogStore
    raise AttributeError(name)
