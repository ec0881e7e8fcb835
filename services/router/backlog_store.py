"""The runbook's import path (``from services.router.backlog_store import JsonlBacklogStore``).

Stores take explicit paths and clocks (the wall clock when none is given); only here, for the
runbook's ``JsonlBacklogStore()``, does a store read the settings (``BACKLOG_JSONL_DIR``, else
``ops/backlog`` under the root, and the ``BACKLOG_NOW`` clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.router.clock import Clock, default_clock
from services.router.settings import load_settings
from services.router.stores import jsonl
from services.router.stores.base import BacklogStore, UpsertRequest, WriteResult
from services.router.stores.factory import open_store
from services.router.stores.memory import MemoryBacklogStore


class JsonlBacklogStore(jsonl.JsonlBacklogStore):
    """The JSONL store; without a folder, the configured one (RUNBOOK §5: ``s = JsonlBacklogStore()``)."""

    def __init__(self, directory: str | Path | None = None, *, clock: Clock | None = None) -> None:
        settings = load_settings()
        super().__init__(directory if directory is not None else settings.jsonl_dir,
                         clock=clock or default_clock(settings))


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
