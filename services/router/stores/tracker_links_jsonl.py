"""Tracker links on JSONL: ``tracker_sync.jsonl`` in the backlog folder (``ops/backlog/``).

The same mechanisms as ``items.jsonl``: one JSON object a line, ``{"id": "<table>/<key>", "t",
"k", "v"}`` with the last line per id winning (``"v": null`` deletes); appended and fsynced under
the folder's writer lock (``.tracker_sync.lock``: ``files.FileLock``, mutex + ``flock``) after
catching up with what other processes appended (``JsonlLog`` reads only the new bytes); a torn
last line is skipped and cut by the next writer. When superseded lines outnumber live records
the file is rewritten whole (``durable.write_atomic``), and other processes see the new inode
and reload.

The sync lock of a tracker is an ``flock`` on ``.tracker_sync.<tracker>.lock``, held for the
whole run (released by the kernel if the process dies).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from services.router.errors import StoreUnavailable
from services.router.files import FileLock, checkpoint, write_atomic
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl_log import JsonlLog
from services.router.stores.tracker_links import NoLoss, SyncLock
from services.router.stores.tracker_links_memory import TABLES, MemoryLinkStore, Value, wait_until

LOG_NAME = "tracker_sync"
COMPACT_MIN_LINES = 1000


def is_record(record: dict[str, Any]) -> bool:
    value = record.get("v")
    return (type(record.get("id")) is str and record.get("t") in TABLES and type(record.get("k")) is str
            and (value is None or type(value) is dict))


class JsonlLinkStore(MemoryLinkStore):
    backend = "jsonl"

    def __init__(self, directory: Path, items: BacklogStore) -> None:
        super().__init__(items)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._log = JsonlLog(directory / f"{LOG_NAME}.jsonl")
        self._writer = FileLock(directory / f".{LOG_NAME}.lock")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._mutex, self._writer.hold():
            self._refresh()
            if self._log.changed_since_verified():
                self._log.cut_torn_tail()
                self._log.mark_verified()
            yield

    def _refresh(self) -> None:
        log = self._log
        log.observe()
        if log.replaced():
            self._clear()
            log.reset()
        for record in log.read_new_records(is_record, latest_by_id=True):
            self._apply(record["t"], record["k"], record["v"])

    def _persist_many(self, changes: Sequence[tuple[str, str, Value | None]]) -> None:
        """One append and one fsync for all of ``changes`` (a batch of links: group commit)."""
        if not changes:
            return
        records = [{"id": f"{table}/{key}", "t": table, "k": key, "v": value} for table, key, value in changes]
        try:
            self._log.append(records, LOG_NAME)
        except OSError as exc:
            raise StoreUnavailable(f"tracker link write failed: {exc.strerror or exc}") from exc
        for table, key, value in changes:
            self._apply(table, key, value)
        live = sum(len(rows) for rows in self._tables.values())
        if self._log.lines > max(COMPACT_MIN_LINES, 2 * live):
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with the live records only (atomic: old file or new, never half)."""
        lines = [orjson.dumps({"id": f"{table}/{key}", "t": table, "k": key, "v": value}) + b"\n"
                 for table, rows in self._tables.items() for key, value in rows.items()]
        write_atomic(self._log.path, b"".join(lines))
        checkpoint("tracker_sync:compacted")
        self._log.close()
        self._log.reset()  # the next refresh reads the new file from its start (same records)

    @contextmanager
    def sync_lock(self, tracker: str, *, wait_seconds: float = 0.0) -> Iterator[SyncLock | None]:
        lock = FileLock(self.directory / f".{LOG_NAME}.{tracker}.lock")  # its own descriptor: excludes threads too
        try:
            owner = f"{os.getpid()}\n"
            yield NoLoss() if wait_until(time.monotonic() + wait_seconds, lambda: lock.try_acquire(owner)) else None
        finally:
            lock.close()  # releases the flock

    def close(self) -> None:
        with self._mutex:
            self._log.close()
            self._writer.close()
