"""Open the signal store that matches the backlog's backend, once per process and location.

Signals live on the same backend as the backlog (DESIGN §8): the memory backlog gets a memory
signal store, JSONL gets ``ops/signals/`` and ``ops/risk/`` beside ``ops/backlog/``, Postgres
gets the ``signals``/``risk_snapshots`` tables. The Auto backlog store decides per call from
the backend it is actually serving (so a Postgres outage moves new signals to JSONL too).

Until ``ToolContext`` carries a signal store itself, tools reach it through
``signal_store_for(ctx)``; when the context has a ``signals`` attribute, that one is used.

With the Auto backend and a DSN, JSONL means Postgres is out: signal writes served there are
journaled (``outage_journal``) and replayed into Postgres by the Auto store's recovery hook
(``attach_outage_replay``, wired by the runtime). Postgres is handed out only once that journal
is empty — a write that slipped in during the switch is replayed first — so no read misses what
was acknowledged during the outage. Plain JSONL (no DSN) is not an outage: nothing is journaled.
"""

from __future__ import annotations

import logging
import threading
import weakref
from functools import partial
from pathlib import Path

from services.router.errors import StoreUnavailable, ValidationFailed
from services.router.settings import Settings
from services.router.signals.outage_journal import JOURNAL_NAME, JournaledSignalStore, catch_up
from services.router.signals.store import MemorySignalStore, SignalStore
from services.router.stores.base import BacklogStore
from services.router.stores.journal_file import JournalFile
from services.router.tools.context import ToolContext

log = logging.getLogger("signal_store")

_lock = threading.Lock()
_memory: dict[int, MemorySignalStore] = {}
_opened: dict[tuple[str, ...], SignalStore] = {}
_journals: dict[str, JournalFile] = {}  # one per folder: its lock is a mutex + flock on one descriptor


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


def replays_outages(settings: Settings) -> bool:
    """Auto with a DSN: signals on JSONL are an outage's, owed to Postgres (plain JSONL owes nothing)."""
    return settings.backlog_backend == "auto" and bool(settings.postgres_dsn_value)


def outage_journal(settings: Settings) -> JournalFile:
    """The journal of signal writes accepted on JSONL during an outage, in the signals folder."""
    folder = signals_dir(settings)
    with _lock:
        journal = _journals.get(str(folder))
        if journal is None:
            journal = _journals[str(folder)] = JournalFile(folder, JOURNAL_NAME)
        return journal


def signal_store_for(ctx: ToolContext) -> SignalStore:
    if ctx.signals is not None:
        return ctx.signals
    backend = active_backend(ctx)
    if backend == "postgres":
        try:
            store = open_signal_store(ctx.settings, "postgres")
            if replays_outages(ctx.settings):
                catch_up(outage_journal(ctx.settings), store)
            return store
        except StoreUnavailable as exc:
            if ctx.settings.backlog_backend != "auto":
                raise
            log.warning("%s; signals go to JSONL", exc.message)  # the message names the signal store
            backend = "jsonl"
    store = open_signal_store(ctx.settings, backend)
    if backend == "jsonl" and replays_outages(ctx.settings):
        return JournaledSignalStore(store, outage_journal(ctx.settings), ctx.clock)
    return store


def replay_outage_writes(settings: Settings) -> None:
    """The Auto store's recovery hook: signal writes journaled during the outage into Postgres."""
    journal = outage_journal(settings)
    if journal.has_pending():
        catch_up(journal, open_signal_store(settings, "postgres"))


def attach_outage_replay(store: BacklogStore, settings: Settings) -> None:
    """Register the replay with an Auto store, so it runs on the same recovery as the backlog's."""
    add_hook = getattr(store, "add_recovery_hook", None)
    if callable(add_hook) and replays_outages(settings):
        add_hook("signals", partial(replay_outage_writes, settings))


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
    """Release pools and journals and forget cached stores (process shutdown, tests)."""
    with _lock:
        stores = list(_opened.values())
        journals = list(_journals.values())
        _opened.clear()
        _memory.clear()
        _journals.clear()
    for store in stores:
        store.close()
    for journal in journals:
        journal.close()
