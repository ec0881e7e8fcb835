"""The in-memory index of the memory and JSONL stores: records by id and dedupe key, events, numbers.

No I/O and no locking: ``indexed.IndexedStore`` holds the mutex around every use.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Iterable

from services.router.domain.aggregates import BacklogAggregates
from services.router.domain.changes import (
    Record,
)
from services.router.domain.enums import CLOSED_STATUSES
from services.router.stores.insight_cache import InsightCache

INTERNED_FIELDS = ("env", "service", "category", "status", "priority", "owner", "source", "due_date")
# Superseded versions the pending list may keep alive before it is folded into the aggregates.
# Only those count: a new item's entry holds nothing the index does not hold already, so a cold
# open of any size leaves the aggregates to the first dashboard (at 50k items and more it used to
# fold them in during the open: the open grew faster than the file).
MAX_PENDING = 50_000


class ItemIndex:
    """Records by id and by dedupe key, creation order, dashboard aggregates, events; no I/O.

    Repeated values (env, service, status …) are interned so 100k items share a few hundred
    strings; ids are kept sorted lazily (new ids almost always sort last) for keyset paging.
    """

    def __init__(self) -> None:
        self.items: dict[str, Record] = {}
        self.by_key: dict[str, str] = {}
        self.item_events: dict[str, list[Record]] = {}
        self.accepted: set[str] = set()  # ids of items whose ``accepted`` is set (any status)
        self._aggregates = BacklogAggregates()
        self._insight = InsightCache()
        self._pending: list[tuple[Record | None, Record | None]] = []
        self._superseded = 0  # entries of ``_pending`` holding a replaced or removed record
        self._order: list[str] = []
        self._order_dirty = False

    @property
    def aggregates(self) -> BacklogAggregates:
        """Dashboard numbers, brought up to date on demand: indexing stays cheap for readers
        that never draw a dashboard, and one that does pays only for what changed."""
        self._flush()
        return self._aggregates

    @property
    def insight(self) -> InsightCache:
        """Problems and trends, brought up to date on demand like ``aggregates``."""
        self._flush()
        return self._insight

    def _flush(self) -> None:
        pending, self._pending, self._superseded = self._pending, [], 0
        aggregates = self._aggregates
        for old, new in pending:
            if old is not None:
                aggregates.remove(old)
            if new is not None:
                aggregates.add(new)
        if pending and self._insight.active:  # idle until problems or trends are first asked for
            self._insight.changes(pending, len(self.items), self._events_as_of)

    def clear(self) -> None:
        self.items.clear()
        self.by_key.clear()
        self.item_events.clear()
        self.accepted.clear()
        self._aggregates.clear()
        self._insight.clear()
        self._pending.clear()
        self._superseded = 0
        self._order.clear()
        self._order_dirty = False

    def put_items(self, records: Iterable[Record], *, intern: bool = True) -> None:
        """Index records (new versions replace old ones by id), in one loop with local names.

        ``intern=False`` is for a reader's small refreshes: hashing eight fresh strings per
        record costs more than parsing it, and refreshes must stay within 2x of parsing
        (bench/jsonl_bench.py), while the memory that interning saves is in the bulk load.
        """
        items, by_key, order, pending, accepted = self.items, self.by_key, self._order, self._pending, self.accepted
        last = order[-1] if order else ""
        superseded = 0
        shared = sys.intern
        for record in records:
            if intern:
                for name in INTERNED_FIELDS:
                    value = record[name]
                    if value is not None:
                        record[name] = shared(value)
            item_id = record["id"]
            old = items.get(item_id)
            if old is not None:
                superseded += 1
                if old["dedupe_key"] != record["dedupe_key"] and by_key.get(old["dedupe_key"]) == item_id:
                    del by_key[old["dedupe_key"]]
            else:
                if item_id < last:
                    self._order_dirty = True
                order.append(item_id)
                last = item_id
            # Lines written before acceptance existed have no ``accepted``: the same shape as every backend's.
            if record.setdefault("accepted", None) is not None:
                accepted.add(item_id)
            elif accepted:
                accepted.discard(item_id)
            items[item_id] = record
            by_key[record["dedupe_key"]] = item_id
            pending.append((old, record))
        self._superseded += superseded
        if self._superseded > MAX_PENDING:
            self._flush()

    def put_event(self, event: Record) -> None:
        events = self.item_events.setdefault(event["item_id"], [])
        if not any(e["id"] == event["id"] for e in events):  # a duplicated line is one event
            events.append(event)

    def remove(self, item_id: str) -> None:
        record = self.items.pop(item_id, None)
        self.accepted.discard(item_id)
        self._insight.forget_trends()  # its events go now: its rows could not be taken away later
        if record is not None:
            self._pending.append((record, None))
            self._superseded += 1
            if self.by_key.get(record["dedupe_key"]) == item_id:
                del self.by_key[record["dedupe_key"]]
            self._order_dirty = True
        self.item_events.pop(item_id, None)

    def ordered_ids(self) -> builtins.list[str]:
        if self._order_dirty:
            self._order = sorted(self.items)
            self._order_dirty = False
        return self._order

    def by_dedupe_key(self, key: str) -> Record | None:
        item_id = self.by_key.get(key)
        return self.items.get(item_id) if item_id else None

    def events_of(self, item_id: str) -> builtins.list[Record]:
        """Events whose item change has landed (an event is written before its item line)."""
        item = self.items.get(item_id)
        return self._events_as_of(item) if item is not None else []

    def _events_as_of(self, record: Record) -> builtins.list[Record]:
        """The events of one version of a record (its ``rev``): a superseded version's, too."""
        rev = record["rev"]
        return [e for e in self.item_events.get(record["id"], ()) if (e.get("item_rev") or 0) <= rev]

    def expired_ids(self, cutoff: str) -> builtins.list[str]:
        return [
            r["id"] for r in self.items.values()
            if r["status"] in CLOSED_STATUSES and r["updated_at"] < cutoff
        ]
