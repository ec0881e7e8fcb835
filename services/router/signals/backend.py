"""Open the signal store that matches the backlog's backend, once per process and location.

Signals live on the same backend as the backlog (DESIGN §8): the memory backlog gets a memory
signal store, JSONL gets ``ops/signals/`` and ``ops/risk/`` beside ``ops/backlog/``, Postgres
gets the ``signals``/``risk_snapshots`` tables. The Auto backlog store decides per call from
the backend it is actually serving (so a Postgres outage moves new signals to JSONL too).

Until ``ToolContext`` carries a signal store itself, tools reach it through
``signal_store_for(ctx)``; when the context has a ``signals`` attribute, that one is used.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

from services.router.errors import StoreUnavailable, ValidationFailed
from services.router.settings import Settings
from services.router.signals.store import MemorySignalStore, SignalStore
from services.router.tools.context import ToolContext

log = logging.getLogger("signal_store")

_lock = threading.Lock()
_memory: dict[int, MemorySignalStore] = {}
_opened: dict[tuple[str, ...], SignalStore] = {}


def signals_dir(settings: Settings) -> Path:
    """``$BACKLOG_SIGNALS_DIR`` when settings carry it, else ``signals/`` beside the backlog's folder.

    By default that is ``ops/signals`` under the root; a relocated backlog folder
    (``BACKLOG_JSONL_DIR``) takes its signals along, so one override moves all runtime data.
    """
    return settings.signals_dir


def risk_dir(settings: Settings) -> Path:
    """``$BACKLOG_RISK_DIR`` when settings carry it, else ``risk/`` beside the backlog's folder."""
    return settings.risk_dir


def active_backend(ctx: ToolContext) -> str:
    backend = str(getattr(ctx.store, "backend", "") or "")
    if backend in ("memory", "jsonl", "postgres"):
        return backend
    return ctx.store.status().backend  # the Auto store: what it serves right now


def signal_store_for(ctx: ToolContext) -> SignalStore:
    if ctx.signals is not None:
        return ctx.signals
    backend = active_backend(ctx)
    if backend == "postgres":
        try:
            return open_signal_store(ctx.settings, "postgres")
        except StoreUnavailable as exc:
            if ctx.settings.backlog_backend != "auto":
                raise
            log.warning("signal store: %s; using JSONL", exc.message)
            backend = "jsonl"
    return open_signal_store(ctx.settings, backend)


def open_signal_store(settings: Settings, backend: str) -> SignalStore:
    """The process-wide store for ``backend`` at the locations ``settings`` name (cached)."""
    with _lock:
        if backend == "memory":
            # One per Settings object: tests build fresh settings per test and must not share.
            key_id = id(settings)
            store = _memory.get(key_id)
            if store is None:
                store = _memory[key_id] = MemorySignalStore()
                weakref.finalize(settings, _memory.pop, key_id, None)
            return store
        if backend == "jsonl":
            key: tuple[str, ...] = ("jsonl", str(signals_dir(settings)), str(risk_dir(settings)))
            if key not in _opened:
                from services.router.signals.store_jsonl import JsonlSignalStore

                _opened[key] = JsonlSignalStore(signals_dir(settings), risk_dir(settings))
            return _opened[key]
        if backend == "postgres":
            dsn = settings.postgres_dsn_value
            if not dsn:
                raise ValidationFailed("the Postgres signal store needs BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)",
                                       field="BACKLOG_POSTGRES_DSN")
            key = ("postgres", dsn)
            if key not in _opened:
                from services.router.signals.store_postgres import PostgresSignalStore

                _opened[key] = PostgresSignalStore(
                    dsn, connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds)
            return _opened[key]
    raise ValidationFailed(f"no signal store for backend {backend!r}", field="BACKLOG_BACKEND")


def close_signal_stores() -> None:
    """Release pools and forget cached stores (process shutdown, tests)."""
    with _lock:
        stores = list(_opened.values())
        _opened.clear()
        _memory.clear()
    for store in stores:
        store.close()
