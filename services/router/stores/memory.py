"""In-memory store (``BACKLOG_BACKEND=memory``): the index alone, for tests and demos."""

from __future__ import annotations

from services.router.stores.indexed import IndexedStore


class MemoryBacklogStore(IndexedStore):
    backend = "memory"
