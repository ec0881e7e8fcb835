"""The tracker link store that goes with a backlog store, opened once per process.

Links live on the backlog's backend: a memory store gets a memory link store (one per store
object), JSONL gets ``tracker_sync.jsonl`` in its folder, Postgres the step-6 tables. The Auto
store uses Postgres while it is on Postgres; on its JSONL fallback tracker sync waits (the
reason is raised as ``StoreUnavailable``, and the next run tries again): sync is not in the
write path, so there is nothing to journal — the items and links it would compare are all
still there when Postgres is back. Without a DSN the Auto store is plain JSONL, and so are
its links.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from services.router.errors import StoreUnavailable
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_links import TrackerLinkStore

_lock = threading.Lock()
# One link store per backlog store object, opened on first use and closed with it (the runtime's
# ``close`` calls ``close_link_store``); weak, so a store dropped without closing takes it along.
_by_store: weakref.WeakKeyDictionary[BacklogStore, TrackerLinkStore] = weakref.WeakKeyDictionary()

DEGRADED = "tracker sync waits for Postgres: the store is on its JSONL fallback ({reason})"


def link_store_for(store: BacklogStore, settings: Settings) -> TrackerLinkStore:
    state = store.status()  # the Auto store: what it serves right now
    if state.degraded:
        raise StoreUnavailable(DEGRADED.format(reason=getattr(store, "reason", None) or "Postgres unavailable"))
    backend = state.backend
    with _lock:
        found = _by_store.get(store)
        if found is not None and found.backend != backend:  # the Auto store moved: not this one
            found = None
        if found is None:
            found = _by_store[store] = _open(store, backend, settings)
        return found


def _open(store: BacklogStore, backend: str, settings: Settings) -> TrackerLinkStore:
    if backend == "postgres":
        dsn = getattr(store, "dsn", None) or settings.postgres_dsn_value
        if not dsn:
            raise StoreUnavailable("tracker links on Postgres need BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)")
        from services.router.stores.tracker_links_postgres import PostgresLinkStore

        return PostgresLinkStore(dsn, connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds)
    if backend == "memory":
        from services.router.stores.tracker_links_memory import MemoryLinkStore

        return MemoryLinkStore(store)
    from services.router.stores.tracker_links_jsonl import JsonlLinkStore

    directory = getattr(store, "directory", None)  # the Auto store without a DSN: the settings' folder
    return JsonlLinkStore(Path(directory) if directory is not None else settings.jsonl_dir, store)


def close_link_store(store: BacklogStore) -> None:
    """Release the link store that went with ``store`` (its pool or file handles), if one was opened."""
    with _lock:
        found = _by_store.pop(store, None)
    if found is not None:
        found.close()
