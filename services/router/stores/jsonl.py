"""JSONL backend: ``ops/backlog/items.jsonl`` and ``events.jsonl`` (RUNBOOK §5, DESIGN §8).

- append-only, one JSON object a line, last write wins per ``id``;
- writers take ``flock`` on a separate lock file, refresh, repair, then append;
- ``items.jsonl`` is the durable log: an item change appends its event line to ``events.jsonl``
  and then the item line — which also carries that event as ``_ev`` — to ``items.jsonl``, and
  returns after ONE fsync (of items.jsonl). A reader indexes events from both files, deduplicated
  by id, so an event line lost from the unsynced events file (power loss) is recovered from its
  item line. A comment touches only ``events.jsonl`` and fsyncs it;
- an event whose item line never landed (crash in between) is invisible to readers (its
  ``item_rev`` is ahead of the item) and is cut off by the next writer, so every visible change
  has exactly one event;
- cleanup rewrites both files atomically (temp, fsync, rename, fsync dir): the complete events
  file first, then the items file (whose lines then no longer need ``_ev``);
- readers parse only what was appended since they last looked and reload after compaction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson

from services.router.clock import Clock
from services.router.domain.changes import Change, Record
from services.router.errors import StoreUnavailable
from services.router.files import FileLock, checkpoint, remove_temp_files, replace_durably, temp_path
from services.router.stores.base import StoreStatus
from services.router.stores.gc_pause import freeze_after_bulk_load, gc_paused
from services.router.stores.indexed import IndexedStore
from services.router.stores.jsonl_log import JsonlLog, write_file_durably

log = logging.getLogger("backlog_store")

ITEMS_FILE = "items.jsonl"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".backlog.lock"
EMBEDDED_EVENT = "_ev"
EMBEDDED_ID = b'"_ev":{"id":"'
EMBEDDED_SKIP = b',' + EMBEDDED_ID  # the embedded event is the last member of an item line


INTERN_FROM = 10_000  # records in one refresh from which their repeated strings are interned
ITEM_KEYS = frozenset({
    "id", "env", "service", "category", "title", "priority", "status", "owner", "created_at", "updated_at",
    "dedupe_key", "rev", "meta", "due_date", "evidence_refs", "tags", "source",
})
EVENT_KEYS = frozenset({"id", "item_id", "ts", "type"})


def is_item(record: Record) -> bool:
    """Enough shape to index and count; anything else is a damaged line, skipped and counted.

    Cheap on purpose (a key-set comparison in C plus the fields used for ordering): it runs on
    every line of a cold open.
    """
    return (
        record.keys() >= ITEM_KEYS and type(record["id"]) is str and type(record["rev"]) is int
        and type(record["dedupe_key"]) is str and type(record["updated_at"]) is str
    )


def is_event(record: Record) -> bool:
    return record.keys() >= EVENT_KEYS and type(record["id"]) is str and type(record["item_id"]) is str


class JsonlBacklogStore(IndexedStore):
    backend = "jsonl"

    def __init__(self, directory: str | Path, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.items_log = JsonlLog(self.directory / ITEMS_FILE)
        self.events_log = JsonlLog(self.directory / EVENTS_FILE)
        self._lock = FileLock(self.directory / LOCK_FILE)
        self._events_loaded = False
        with self._locked():
            self._remove_stale_temp_files()

    # -- reading -------------------------------------------------------------
    def _refresh(self) -> None:
        # the records and index entries are acyclic: without the collector a cold open grows with
        # the file (it walked the growing heap again and again: 7.5x the time for 5x the items)
        with self._mutex, gc_paused():
            self.items_log.observe()
            self.events_log.observe()
            if self.items_log.replaced() or self.events_log.replaced():
                self._reload()
            if self._events_loaded:
                for line in self.events_log.read_new(is_event):
                    self.index.put_event(line.record)
            # A reader that has not loaded events skips decoding the embedded ones altogether.
            skip = None if self._events_loaded else EMBEDDED_SKIP
            records = self.items_log.read_new_records(is_item, latest_by_id=True, skip_last=skip)
            for record in records:
                event = record.pop(EMBEDDED_EVENT, None)
                if event is not None and self._events_loaded:
                    self.index.put_event(event)
            if records:  # nothing new: the usual case before a write
                self.index.put_items(records, intern=not self.index.items or len(records) > INTERN_FROM)
                freeze_after_bulk_load(len(records))

    def _load_events(self) -> None:
        """Index events on first use: most readers (dashboards, lists) never need them."""
        with self._mutex, gc_paused():
            if self._events_loaded:
                return
            self._refresh()
            lines = self.events_log.read_new(is_event)
            for line in lines:
                self.index.put_event(line.record)
            self._recover_embedded_events()
            self._events_loaded = True
            freeze_after_bulk_load(len(lines))

    def _recover_embedded_events(self) -> None:
        """Take events lost from the (unsynced) events file from the item lines that carry them.

        Only lines whose embedded event id is unknown are decoded, found by a byte search.
        """
        known = {e["id"] for evs in self.index.item_events.values() for e in evs}
        try:
            with open(self.items_log.path, "rb") as fh:
                data = fh.read(self.items_log.offset)
        except FileNotFoundError:
            return
        touched: set[str] = set()
        for raw in data.split(b"\n"):
            at = raw.find(EMBEDDED_ID)
            if at < 0:
                continue
            start = at + len(EMBEDDED_ID)
            event_id = raw[start:raw.find(b'"', start)].decode("ascii", "replace")
            if event_id in known:
                continue
            try:
                event = orjson.loads(raw).get(EMBEDDED_EVENT)
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(event, dict) and is_event(event):
                log.warning("recovered event %s from its item line (events file was behind)", event_id)
                self.index.put_event(event)
                known.add(event_id)
                touched.add(event["item_id"])
        for item_id in touched:
            self.index.item_events[item_id].sort(key=lambda e: (e["ts"], e["id"]))

    def _reload(self) -> None:
        self.index.clear()
        self._events_loaded = False
        self.items_log.reset()
        self.events_log.reset()

    @property
    def skipped_lines(self) -> int:
        return self.items_log.skipped + self.events_log.skipped

    def status(self) -> StoreStatus:
        return StoreStatus(
            backend=self.backend,
            detail={"items": len(self.index.items), "skipped_lines": self.skipped_lines},
        )

    # -- writing -------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, self._lock.hold():
            self._refresh()
            self._repair()
            yield

    def close(self) -> None:
        with self._mutex:
            self.items_log.close()
            self.events_log.close()
            self._lock.close()

    def _repair(self) -> None:
        """Holding the lock, nobody else is writing: partial tails and orphans are crash debris.

        Only the last event line can be an orphan (its item line never landed), because every
        writer repairs before it appends.
        """
        if self.items_log.changed_since_verified():
            self.items_log.cut_torn_tail()
            self.items_log.mark_verified()
        if not self.events_log.changed_since_verified():
            return
        self.events_log.cut_torn_tail()
        self._drop_orphan_event()
        self.events_log.mark_verified()

    def _drop_orphan_event(self) -> None:
        last = self.events_log.last_record(is_event)
        if last is None:
            return
        event = last.record
        item = self.index.items.get(event["item_id"])
        if item is not None and (event.get("item_rev") or 0) <= item["rev"]:
            return
        if item is None and event["type"] != "created":
            return  # an event of an item removed by a cleanup that did not finish: harmless
        log.warning("dropping event %s whose item change never landed", event["id"])
        self.events_log.drop_from(last.offset)
        evs = self.index.item_events.get(event["item_id"], [])
        self.index.item_events[event["item_id"]] = [e for e in evs if e["id"] != event["id"]]

    def _persist(self, changes: Sequence[Change], events: Sequence[Record]) -> None:
        try:
            if events:
                # Durable through the item lines when there are any; a comment alone syncs here.
                self.events_log.append(list(events), "events", sync=not changes, parsed=self._events_loaded)
            checkpoint("between_files")
            if changes:
                self.items_log.append([{**c.item, EMBEDDED_EVENT: c.event} for c in changes], "items")
        except OSError as exc:
            raise StoreUnavailable(f"backlog storage write failed: {exc.strerror or exc}") from exc
        self._apply(changes, events if self._events_loaded else ())

    def _remove_durably(self, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            self.index.remove(item_id)
        self._compact()

    def cleanup(self, retention_days: int) -> int:
        removed = super().cleanup(retention_days)
        if not removed:
            with self._locked():
                if self._has_garbage():
                    self._compact()
        return removed

    def _has_garbage(self) -> bool:
        """Superseded item versions or skipped lines: a rewrite would shrink the files."""
        return self.items_log.lines > len(self.index.items) or self.skipped_lines > 0

    def _compact(self) -> None:
        """Rewrite both files with only live records: events first, then items.

        A crash between the two renames leaves the old items with the new events: nothing live
        is lost, and the expired items still there go at the next cleanup.
        """
        self._load_events()
        items = [self.index.items[i] for i in self.index.ordered_ids()]
        events = [e for item_id in sorted(self.index.items) for e in self.index.events_of(item_id)]
        # Events first: once the complete events file is in place, item lines may drop ``_ev``.
        plan = [(self.events_log, events, "cleanup_events"), (self.items_log, items, "cleanup_items")]
        temps = [temp_path(log_.path) for log_, _, _ in plan]
        try:
            # Both temp files are complete and fsynced before anything is renamed, so a failure
            # while writing them leaves the old files untouched.
            for (_, records, stage), temp in zip(plan, temps, strict=True):
                write_file_durably(temp, records, stage)
            for (log_, _, stage), temp in zip(plan, temps, strict=True):
                replace_durably(temp, log_.path)
                checkpoint(f"{stage}:after_rename")
        except OSError as exc:
            self._remove_stale_temp_files()
            self._reload()
            raise StoreUnavailable(f"backlog compaction failed: {exc.strerror or exc}") from exc
        # Adopt the files we just wrote without parsing them again.
        for log_, count in ((self.items_log, len(items)), (self.events_log, len(events))):
            st = os.stat(log_.path)
            log_.inode, log_.offset, log_.lines, log_.skipped = st.st_ino, st.st_size, count, 0
        self.index.item_events = {k: self.index.events_of(k) for k in self.index.items}

    def _remove_stale_temp_files(self) -> None:
        remove_temp_files(self.directory, lambda path: log.warning(
            "removing leftover temp file %s from an interrupted cleanup", path))
