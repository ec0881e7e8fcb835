"""The index-backed store shared by memory and JSONL.

``IndexedStore`` keeps records in an ``ItemIndex`` and calls two hooks — ``_locked()`` to
serialize writers and ``_persist()`` to make a change durable — so the memory store is the index
alone and the JSONL store adds a file log.
"""

from __future__ import annotations

import bisect
import builtins
import functools
import itertools
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date
from typing import Any, TypeVar

from services.router.clock import Clock, SystemClock
from services.router.domain.changes import (
    Change,
    Record,
    dedupe_key_of,
    plan_comment,
    plan_status,
    plan_upsert,
)
from services.router.domain.edits import plan_due_date, plan_owner
from services.router.domain.enums import EventType, Status
from services.router.domain.models import ItemInput
from services.router.domain.queries import ItemQuery, OverdueIds, Page, check_fields
from services.router.domain.revisions import Revision, plan_note, plan_revision
from services.router.domain.sorting import DEFAULT_SORT, after, encode_cursor, order
from services.router.domain.trends import trend_weeks
from services.router.errors import NotFound
from services.router.stores.base import (
    DEFAULT_OWNER,
    BacklogStore,
    StoreStatus,
    UpsertRequest,
    WriteResult,
    cleanup_cutoff,
    dedupe_batch,
)
from services.router.stores.index import ItemIndex

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
        self.clock: Clock = clock or SystemClock()
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
        if changes:  # one call for a batch (a generation run writes thousands)
            self.index.put_items([change.item for change in changes])

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
            ids = self.index.aggregates.overdue_ids(env=query.env, today=today, priority=priority)
        else:
            ids = self.index.ordered_ids()
        items = self.index.items
        if query.sort != DEFAULT_SORT:
            hits = self._sorted(ids, items, query, today)
        else:
            start = bisect.bisect_right(ids, query.cursor) if query.cursor else 0
            if query.overdue is True and query.service is None and query.status is None and query.owner is None \
                    and query.category is None and query.active is None and query.q is None:
                # The overdue buckets hold exactly the env's active items due before today, by
                # priority: every id in ``ids`` matches, so the page is the next ``limit`` of them.
                hits = [items[i] for i in itertools.islice(ids, start, start + query.limit + 1)]
            else:
                hits = self._matching(ids, start, items, query, today)
        more = len(hits) > query.limit
        page = hits[: query.limit]
        # Shallow copies, as validating ``Page`` would make, without validating the index's own records.
        cursor = encode_cursor(query.sort, page[-1]) if more and page else None
        return Page.model_construct(items=[dict(r) for r in page], next_cursor=cursor)

    @staticmethod
    def _matching(ids: Sequence[str], start: int, items: dict[str, Record], query: ItemQuery,
                  today: date) -> builtins.list[Record]:
        """Creation order: the ids after the cursor (``start``) are walked until the page is full."""
        hits: builtins.list[Record] = []
        for item_id in itertools.islice(ids, start, None):
            record = items[item_id]
            if query.matches_filters(record, today):
                hits.append(record)
                if len(hits) > query.limit:
                    break
        return hits

    @staticmethod
    def _sorted(ids: Sequence[str], items: dict[str, Record], query: ItemQuery,
                today: date) -> builtins.list[Record]:
        """Another order: every match sorted (``domain.sorting``), then the rows after the cursor."""
        position = query.position()
        ranked = order((items[i] for i in ids if query.matches_filters(items[i], today)), query.sort)
        if position is not None:
            ranked = [r for r in ranked if after(r, query.sort, position)]
        return ranked[: query.limit + 1]

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
    def accepted_items(self, env: str | None = None) -> builtins.list[Record]:
        items = self.index.items
        return [dict(items[i]) for i in sorted(self.index.accepted)
                if env is None or items[i]["env"] == env]

    @reading
    def envs(self) -> builtins.list[str]:
        """Envs that hold at least one item (per-env metrics and alerts iterate these)."""
        return sorted(env for env, stats in self.index.aggregates.envs.items() if stats.total > 0)

    @reading
    def trends(self, env: str | None, service: str | None, weeks: int) -> builtins.list[Record]:
        self._load_events()
        index = self.index
        rows = index.insight.trends(lambda: index.items.values(), index.events_of, env, service,
                                    trend_weeks(self.clock.now().date(), weeks))
        return [dict(r) for r in rows]

    @reading
    def problems(self, env: str, service: str | None = None) -> builtins.list[Record]:
        rows = self.index.insight.problems(self.index.items.values(), env, service, self.clock.now().date())
        # A new list of the kept rows, shared with later calls until their lineage changes (as the
        # dashboard's lists are): callers read them, never change them. Copying 2,000 rows would
        # cost more than keeping them.
        return list(rows)

    def status(self) -> StoreStatus:
        return StoreStatus(backend=self.backend)

    # -- writes --------------------------------------------------------------
    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER,
               on_behalf_of: str | None = None) -> WriteResult:
        return self.upsert_many([UpsertRequest(item, fallback_owner)], actor=actor, on_behalf_of=on_behalf_of)[0]

    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str,
                    on_behalf_of: str | None = None) -> builtins.list[WriteResult]:
        unique = dedupe_batch(requests)
        with self._locked():
            now = self.clock.now()
            changes = [
                plan_upsert(
                    self.index.by_dedupe_key(dedupe_key_of(r.item)), r.item,
                    fallback_owner=r.fallback_owner, now=now, actor=actor, on_behalf_of=on_behalf_of,
                )
                for r in unique
            ]
            self._write(changes)
        results = {dedupe_key_of(r.item): c for r, c in zip(unique, changes, strict=True)}
        return [self._result(results[dedupe_key_of(r.item)]) for r in requests]

    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "",
                   on_behalf_of: str | None = None) -> WriteResult:
        with self._locked():
            change = plan_status(self._require(item_id), status, now=self.clock.now(), actor=actor,
                                 message=message, on_behalf_of=on_behalf_of)
            self._write([change])
        return self._result(change)

    def set_owner(self, item_id: str, owner: str, *, actor: str, message: str = "",
                  on_behalf_of: str | None = None) -> WriteResult:
        with self._locked():
            change = plan_owner(self._require(item_id), owner, now=self.clock.now(), actor=actor, message=message,
                                on_behalf_of=on_behalf_of)
            self._write([change])
        return self._result(change)

    def set_due_date(self, item_id: str, due_date: date | None, *, actor: str, message: str = "",
                     on_behalf_of: str | None = None) -> WriteResult:
        with self._locked():
            change = plan_due_date(self._require(item_id), due_date, now=self.clock.now(), actor=actor,
                                   message=message, on_behalf_of=on_behalf_of)
            self._write([change])
        return self._result(change)

    def revise(self, item_id: str, revision: Revision, *, actor: str, on_behalf_of: str | None = None) -> WriteResult:
        with self._locked():
            change = plan_revision(self._require(item_id), revision, now=self.clock.now(), actor=actor,
                                   on_behalf_of=on_behalf_of)
            self._write([change])
        return self._result(change)

    def add_comment(self, item_id: str, message: str, *, actor: str, on_behalf_of: str | None = None) -> Record:
        with self._locked():
            event = plan_comment(self._require(item_id), message, now=self.clock.now(), actor=actor,
                                 on_behalf_of=on_behalf_of)
            self._persist([], [event])
        return event

    def add_note(self, item_id: str, kind: EventType, message: str, meta: Record, *, actor: str,
                 on_behalf_of: str | None = None) -> Record:
        with self._locked():
            event = plan_note(self._require(item_id), kind, message, meta, now=self.clock.now(), actor=actor,
                              on_behalf_of=on_behalf_of)
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
