"""The store interface and the index-backed implementation shared by memory and JSONL.

Every backend applies the same pure planners from ``domain.changes``; a backend only decides
how a change is made durable. ``IndexedStore`` keeps records in an in-memory index and calls
two hooks — ``_locked()`` to serialize writers and ``_persist()`` to make a change durable —
so the memory store is the index alone and the JSONL store adds a file log.
"""

from __future__ import annotations

import bisect
import builtins
import functools
import itertools
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from services.router.clock import Clock, default_clock, iso_z
from services.router.domain.aggregates import BacklogAggregates
from services.router.domain.changes import (
    Change,
    Record,
    dedupe_key_of,
    plan_comment,
    plan_status,
    plan_upsert,
)
from services.router.domain.enums import CLOSED_STATUSES, Status
from services.router.domain.models import ItemInput
from services.router.domain.queries import ItemQuery, OverdueIds, Page, check_fields
from services.router.errors import NotFound, ValidationFailed

DEFAULT_OWNER = "oncall"


@dataclass(frozen=True, slots=True)
class UpsertRequest:
    """One item of a batch upsert; ``fallback_owner`` is used only when the item is created."""

    item: ItemInput
    fallback_owner: str = DEFAULT_OWNER


@dataclass(frozen=True, slots=True)
class WriteResult:
    action: str
    item: Record
    event: Record | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "item": self.item, "event": self.event}


@dataclass(slots=True)
class StoreStatus:
    backend: str
    degraded: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class BacklogStore(Protocol):
    """What every backend offers; the contract tests run against each one."""

    @property
    def backend(self) -> str:
        """``memory``, ``jsonl`` or ``postgres``: what serves the calls now (Auto: either of the last two)."""
    clock: Clock

    def get(self, item_id: str) -> Record | None: ...
    def get_by_dedupe_key(self, key: str) -> Record | None: ...
    def get_many_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, Record]: ...
    def list(self, query: ItemQuery, *, fields: Collection[str] | None = None) -> Page:
        """One page of ``query``. ``fields``: the only fields the caller reads; each record then
        holds at least those and ``id`` (a backend that must fetch rows fetches only those)."""
        ...

    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER) -> WriteResult: ...
    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str) -> builtins.list[WriteResult]: ...
    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "") -> WriteResult: ...
    def add_comment(self, item_id: str, message: str, *, actor: str) -> Record: ...
    def events(self, item_id: str) -> builtins.list[Record]: ...
    def dashboard(self, env: str | None = None) -> dict[str, Any]: ...
    def overdue_ids(self, env: str | None, priority: str | None, *, limit: int) -> OverdueIds: ...
    def envs(self) -> builtins.list[str]: ...
    def cleanup(self, retention_days: int) -> int: ...
    def status(self) -> StoreStatus: ...
    def close(self) -> None: ...


def cleanup_cutoff(clock: Clock, retention_days: int) -> str:
    """Closed items whose ``updated_at`` is strictly before this timestamp are removed."""
    if retention_days < 0:
        raise ValidationFailed("retention_days must be >= 0", field="retention_days")
    return iso_z(clock.now() - timedelta(days=retention_days))


def dedupe_batch(requests: Sequence[UpsertRequest]) -> builtins.list[UpsertRequest]:
    """Last request wins per dedupe key, at the key's first place (one write per key): the item
    is created where applying the requests one by one would create it, so ids follow that order."""
    latest: dict[str, UpsertRequest] = {}
    for req in requests:
        latest[dedupe_key_of(req.item)] = req  # a dict keeps a key where it was first set
    return list(latest.values())


INTERNED_FIELDS = ("env", "service", "category", "status", "priority", "owner", "source", "due_date")
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
        self._aggregates = BacklogAggregates()
        self._pending: list[tuple[Record | None, Record | None]] = []
        self._order: list[str] = []
        self._order_dirty = False

    @property
    def aggregates(self) -> BacklogAggregates:
        """Dashboard numbers, brought up to date on demand: indexing stays cheap for readers
        that never draw a dashboard, and one that does pays only for what changed."""
        self._flush()
        return self._aggregates

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        aggregates = self._aggregates
        for old, new in pending:
            if old is not None:
                aggregates.remove(old)
            if new is not None:
                aggregates.add(new)

    def clear(self) -> None:
        self.items.clear()
        self.by_key.clear()
        self.item_events.clear()
        self._aggregates.clear()
        self._pending.clear()
        self._order.clear()
        self._order_dirty = False

    def put_items(self, records: Iterable[Record], *, intern: bool = True) -> None:
        """Index records (new versions replace old ones by id), in one loop with local names.

        ``intern=False`` is for a reader's small refreshes: hashing eight fresh strings per
        record costs more than parsing it, and refreshes must stay within 2x of parsing
        (bench/jsonl_bench.py), while the memory that interning saves is in the bulk load.
        """
        items, by_key, order, pending = self.items, self.by_key, self._order, self._pending
        last = order[-1] if order else ""
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
                if old["dedupe_key"] != record["dedupe_key"] and by_key.get(old["dedupe_key"]) == item_id:
                    del by_key[old["dedupe_key"]]
            else:
                if item_id < last:
                    self._order_dirty = True
                order.append(item_id)
                last = item_id
            items[item_id] = record
            by_key[record["dedupe_key"]] = item_id
            pending.append((old, record))
        if len(pending) > MAX_PENDING:
            self._flush()

    def put_event(self, event: Record) -> None:
        events = self.item_events.setdefault(event["item_id"], [])
        if not any(e["id"] == event["id"] for e in events):  # a duplicated line is one event
            events.append(event)

    def remove(self, item_id: str) -> None:
        record = self.items.pop(item_id, None)
        if record is not None:
            self._pending.append((record, None))
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
        if item is None:
            return []
        rev = item["rev"]
        return [e for e in self.item_events.get(item_id, ()) if (e.get("item_rev") or 0) <= rev]

    def expired_ids(self, cutoff: str) -> builtins.list[str]:
        return [
            r["id"] for r in self.items.values()
            if r["status"] in CLOSED_STATUSES and r["updated_at"] < cutoff
        ]


R = TypeVar("R")


def hold_if_free(store: BacklogStore) -> AbstractContextManager[bool]:
    """True inside when the store serves reads from an in-process index it now holds for the
    caller (``IndexedStore.hold_if_free``); False for stores that read over the network."""
    return store.hold_if_free() if isinstance(store, IndexedStore) else nullcontext(False)


def reading(method: Callable[..., R]) -> Callable[..., R]:
    """Run a read under the store's mutex after bringing the index up to date.

    The router serves requests from a thread pool: a read must not walk the index while a
    write in another thread changes it.
    """

    @functools.wraps(method)
    def wrapper(self: IndexedStore, *args: Any, **kwargs: Any) -> R:
        with self._mutex:
            self._refresh()
            return method(self, *args, **kwargs)

    return wrapper


class IndexedStore:
    """Store logic over an ``ItemIndex``; subclasses supply locking and durability."""

    backend = "memory"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or default_clock()
        self.index = ItemIndex()
        self._mutex = threading.RLock()

    @contextmanager
    def hold_if_free(self) -> Iterator[bool]:
        """Hold the index for the caller's reads if nobody else does (True), without waiting.

        The router runs index reads on its event loop when this says True: the thread-pool hop
        they would otherwise take costs more than the read. It must not wait, because a writer
        holding the index may be in the middle of an fsync and the loop would stall behind it.
        """
        held = self._mutex.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                self._mutex.release()

    # -- hooks ---------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize writers and bring the index up to date before planning a change."""
        with self._mutex:
            yield

    def _refresh(self) -> None:
        """Bring the index up to date for a read (JSONL: parse what others appended)."""

    def _persist(self, changes: Sequence[Change], events: Sequence[Record]) -> None:
        """Make changes durable; must return only once they are. Default: index only."""
        self._apply(changes, events)

    def _load_events(self) -> None:
        """Make sure events are indexed (JSONL loads them on first use; memory always has them)."""

    def _remove_durably(self, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            self.index.remove(item_id)

    def _apply(self, changes: Sequence[Change], events: Sequence[Record]) -> None:
        for event in events:
            self.index.put_event(event)
        for change in changes:
            self.index.put_items((change.item,))

    # -- reads ---------------------------------------------------------------
    @reading
    def get(self, item_id: str) -> Record | None:
        return self.index.items.get(item_id)

    @reading
    def get_by_dedupe_key(self, key: str) -> Record | None:
        return self.index.by_dedupe_key(key)

    @reading
    def get_many_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, Record]:
        found = {k: self.index.by_dedupe_key(k) for k in keys}
        return {k: v for k, v in found.items() if v is not None}

    @reading
    def list(self, query: ItemQuery, *, fields: Collection[str] | None = None) -> Page:
        check_fields(fields)  # otherwise ignored: the records are in memory, and copied either way
        today = self.clock.now().date()
        if query.overdue is True:
            # Only overdue items can match: walk those (the aggregates know them), not every item.
            priority = query.priority.value if query.priority is not None else None
            order = self.index.aggregates.overdue_ids(env=query.env, today=today, priority=priority)
        else:
            order = self.index.ordered_ids()
        start = bisect.bisect_right(order, query.cursor) if query.cursor else 0
        items = self.index.items
        if query.overdue is True and query.service is None and query.status is None and query.owner is None \
                and query.category is None and query.active is None:
            # The overdue buckets hold exactly the env's active items due before today, by
            # priority: every id in ``order`` matches, so the page is the next ``limit`` of them.
            hits = [items[i] for i in itertools.islice(order, start, start + query.limit + 1)]
        else:
            hits = self._matching(order, start, items, query, today)
        more = len(hits) > query.limit
        page = hits[: query.limit]
        # Shallow copies, as validating ``Page`` would make, without validating the index's own records.
        cursor = page[-1]["id"] if more and page else None
        return Page.model_construct(items=[dict(r) for r in page], next_cursor=cursor)

    @staticmethod
    def _matching(order: Sequence[str], start: int, items: dict[str, Record], query: ItemQuery,
                  today: date) -> builtins.list[Record]:
        hits: builtins.list[Record] = []
        for item_id in itertools.islice(order, start, None):
            record = items[item_id]
            if query.matches(record, today):
                hits.append(record)
                if len(hits) > query.limit:
                    break
        return hits

    @reading
    def events(self, item_id: str) -> builtins.list[Record]:
        if item_id not in self.index.items:
            raise NotFound(f"no backlog item {item_id}", id=item_id)
        self._load_events()
        return self.index.events_of(item_id)  # in write order

    @reading
    def dashboard(self, env: str | None = None) -> dict[str, Any]:
        now = self.clock.now()
        return self.index.aggregates.dashboard(self.index.items, env=env, today=now.date(), now=now)

    @reading
    def overdue_ids(self, env: str | None, priority: str | None, *, limit: int) -> OverdueIds:
        found = self.index.aggregates.overdue_ids(env=env, today=self.clock.now().date(), priority=priority)
        return OverdueIds(len(found), found[:limit])

    @reading
    def envs(self) -> builtins.list[str]:
        """Envs that hold at least one item (per-env metrics and alerts iterate these)."""
        return sorted(env for env, stats in self.index.aggregates.envs.items() if stats.total > 0)

    def status(self) -> StoreStatus:
        return StoreStatus(backend=self.backend)

    # -- writes --------------------------------------------------------------
    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER) -> WriteResult:
        return self.upsert_many([UpsertRequest(item, fallback_owner)], actor=actor)[0]

    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str) -> builtins.list[WriteResult]:
        unique = dedupe_batch(requests)
        with self._locked():
            now = self.clock.now()
            changes = [
                plan_upsert(
                    self.index.by_dedupe_key(dedupe_key_of(r.item)), r.item,
                    fallback_owner=r.fallback_owner, now=now, actor=actor,
                )
                for r in unique
            ]
            self._write(changes)
        results = {dedupe_key_of(r.item): c for r, c in zip(unique, changes, strict=True)}
        return [self._result(results[dedupe_key_of(r.item)]) for r in requests]

    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "") -> WriteResult:
        with self._locked():
            change = plan_status(self._require(item_id), status, now=self.clock.now(), actor=actor,
                                 message=message)
            self._write([change])
        return self._result(change)

    def add_comment(self, item_id: str, message: str, *, actor: str) -> Record:
        with self._locked():
            event = plan_comment(self._require(item_id), message, now=self.clock.now(), actor=actor)
            self._persist([], [event])
        return event

    def cleanup(self, retention_days: int) -> int:
        cutoff = cleanup_cutoff(self.clock, retention_days)
        with self._locked():
            expired = self.index.expired_ids(cutoff)
            if expired:
                self._remove_durably(expired)
        return len(expired)

    def close(self) -> None:
        """Nothing to release for the index alone."""

    # -- helpers -------------------------------------------------------------
    def _require(self, item_id: str) -> Record:
        record = self.index.items.get(item_id)
        if record is None:
            raise NotFound(f"no backlog item {item_id}", id=item_id)
        return record

    def _write(self, changes: Sequence[Change]) -> None:
        real = [c for c in changes if c.event is not None]
        if real:
            self._persist(real, [c.event for c in real if c.event is not None])

    @staticmethod
    def _result(change: Change) -> WriteResult:
        return WriteResult(change.action, change.item, change.event)
