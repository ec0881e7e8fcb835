"""Tracker links in memory (``BACKLOG_BACKEND=memory``), and the record logic JSONL shares.

Records live in four dicts (links, work, cursors, tracker states) of plain JSON values. The
JSONL store subclasses this and adds durability through two hooks, as the item stores do:
``_writing()`` serializes writers (and catches up with other processes), ``_persist_many()``
makes record changes durable (together: one write) before they are applied here.

The backlog store is consulted only outside this store's mutex (an API thread may hold the
item store while it asks for a link, and a sync thread the reverse).
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from services.router.domain.changes import Record
from services.router.errors import Conflict, NotFound
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_links import (
    SEP,
    NoLoss,
    SyncLock,
    SyncWork,
    TrackerLink,
    comments_after,
    work_key,
)

TABLES = ("link", "work", "cursor", "tracker")
Value = dict[str, Any]


class MemoryLinkStore:
    backend = "memory"

    def __init__(self, items: BacklogStore) -> None:
        self._items = items
        self._tables: dict[str, dict[str, Value]] = {t: {} for t in TABLES}
        self._by_remote: dict[str, str] = {}  # tracker SEP remote key → item id
        self._mutex = threading.RLock()
        self._run_locks: dict[str, threading.Lock] = {}

    # -- hooks (JSONL overrides) ---------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._mutex:
            self._refresh()
            yield

    def _refresh(self) -> None:
        """Catch up with what other processes wrote (JSONL)."""

    def _persist(self, table: str, key: str, value: Value | None) -> None:
        self._persist_many([(table, key, value)])

    def _persist_many(self, changes: Sequence[tuple[str, str, Value | None]]) -> None:
        for table, key, value in changes:
            self._apply(table, key, value)

    def _apply(self, table: str, key: str, value: Value | None) -> None:
        rows = self._tables[table]
        if table == "link":
            old = rows.get(key)
            if old is not None and old.get("remote_key"):
                self._by_remote.pop(f"{old['tracker']}{SEP}{old['remote_key']}", None)
            if value is not None and value.get("remote_key"):
                self._by_remote[f"{value['tracker']}{SEP}{value['remote_key']}"] = key
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value

    def _clear(self) -> None:
        for rows in self._tables.values():
            rows.clear()
        self._by_remote.clear()

    def _rows(self, table: str) -> builtins.list[Value]:
        with self._mutex:
            self._refresh()
            return list(self._tables[table].values())

    def _row(self, table: str, key: str) -> Value | None:
        with self._mutex:
            self._refresh()
            return self._tables[table].get(key)

    def _alive(self, item_id: str) -> bool:
        return self._items.get(item_id) is not None

    # -- links -----------------------------------------------------------------------------------
    def get_link(self, item_id: str) -> TrackerLink | None:
        row = self._row("link", item_id)
        return TrackerLink.from_dict(row) if row is not None and self._alive(item_id) else None

    def links(self, tracker: str | None = None) -> builtins.list[TrackerLink]:
        rows = [r for r in self._rows("link") if tracker is None or r["tracker"] == tracker]
        return [TrackerLink.from_dict(r) for r in sorted(rows, key=lambda r: r["item_id"]) if self._alive(r["item_id"])]

    def link_by_key(self, tracker: str, remote_key: str) -> TrackerLink | None:
        with self._mutex:
            self._refresh()
            item_id = self._by_remote.get(f"{tracker}{SEP}{remote_key}")
            row = self._tables["link"].get(item_id) if item_id else None
        return TrackerLink.from_dict(row) if row is not None and self._alive(row["item_id"]) else None

    def put_link(self, link: TrackerLink) -> None:
        self.put_links([link])

    def put_links(self, links: Sequence[TrackerLink], *, delete: Sequence[str] = ()) -> None:
        for link in links:
            if not self._alive(link.item_id):
                raise NotFound(f"no backlog item {link.item_id}", id=link.item_id)
        with self._writing():
            changing = {link.item_id for link in links} | set(delete)  # their old keys are freed
            claimed: dict[str, str] = {}  # tracker SEP remote key → the batch's item holding it
            for link in links:
                if not link.remote_key:
                    continue
                remote = f"{link.tracker}{SEP}{link.remote_key}"
                holder = claimed.get(remote)
                if holder is None:
                    holder = self._by_remote.get(remote)
                    holder = None if holder in changing else holder
                if holder is not None and holder != link.item_id:
                    raise Conflict(f"{link.tracker} issue {link.remote_key} is already linked to {holder}",
                                   item_id=holder)
                claimed[remote] = link.item_id
            rows = self._tables["link"]
            self._persist_many([("link", item_id, None) for item_id in dict.fromkeys(delete) if item_id in rows]
                               + [("link", link.item_id, link.to_dict()) for link in links])

    def delete_link(self, item_id: str) -> None:
        with self._writing():
            if item_id in self._tables["link"]:
                self._persist("link", item_id, None)

    # -- work ------------------------------------------------------------------------------------
    def work(self, tracker: str | None = None) -> builtins.list[SyncWork]:
        rows = [r for r in self._rows("work") if tracker is None or r["tracker"] == tracker]
        found = [SyncWork.from_dict(r) for r in sorted(rows, key=lambda r: (r["tracker"], r["subject"]))]
        return [w for w in found if w.item_id is None or self._alive(w.item_id)]

    def put_work(self, work: SyncWork) -> None:
        with self._writing():
            self._persist("work", work_key(work.tracker, work.subject), work.to_dict())

    def delete_work(self, tracker: str, subject: str) -> None:
        key = work_key(tracker, subject)
        with self._writing():
            if key in self._tables["work"]:
                self._persist("work", key, None)

    # -- cursors and tracker state ---------------------------------------------------------------
    def cursor(self, tracker: str, project: str) -> dict[str, Any] | None:
        row = self._row("cursor", work_key(tracker, project))
        return dict(row["cursor"]) if row is not None else None

    def put_cursor(self, tracker: str, project: str, cursor: dict[str, Any]) -> None:
        with self._writing():
            self._persist("cursor", work_key(tracker, project), {"tracker": tracker, "project": project,
                                                                 "cursor": cursor})

    def tracker_state(self, tracker: str) -> dict[str, Any]:
        row = self._row("tracker", tracker)
        return dict(row["state"]) if row is not None else {}

    def put_tracker_state(self, tracker: str, state: dict[str, Any]) -> None:
        with self._writing():
            self._persist("tracker", tracker, {"tracker": tracker, "state": state})

    # -- comments --------------------------------------------------------------------------------
    def new_comments(self, marks: Mapping[str, str | None]) -> dict[str, builtins.list[Record]]:
        out: dict[str, builtins.list[Record]] = {}
        for item_id, mark in marks.items():
            try:
                events = self._items.events(item_id)
            except NotFound:
                continue
            found = comments_after(events, mark)
            if found:
                out[item_id] = found
        return out

    # -- the sync lock ---------------------------------------------------------------------------
    @contextmanager
    def sync_lock(self, tracker: str, *, wait_seconds: float = 0.0) -> Iterator[SyncLock | None]:
        with self._mutex:
            lock = self._run_locks.setdefault(tracker, threading.Lock())
        acquired = lock.acquire(timeout=wait_seconds) if wait_seconds > 0 else lock.acquire(blocking=False)
        try:
            yield NoLoss() if acquired else None
        finally:
            if acquired:
                lock.release()

    def close(self) -> None:
        """Nothing to release."""


def wait_until(deadline: float, attempt: Any, *, step_seconds: float = 0.05) -> bool:
    """Call ``attempt()`` until it returns True or the monotonic ``deadline`` passes."""
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_seconds)
