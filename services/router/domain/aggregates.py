"""Dashboard numbers kept up to date as records change, so a dashboard costs O(shown), not O(items).

Each env keeps counters by status and priority, active items per service, and its active items
with a due date bucketed by date: overdue items are the buckets dated before today.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from services.router.clock import iso_z
from services.router.domain.dashboard import OVERDUE_FIELDS, OVERDUE_LIMIT, TOP_SERVICES, assemble
from services.router.domain.enums import ACTIVE_STATUSES, PRIORITY_RANK

Record = dict[str, Any]
DueKey = tuple[str, int, str]


class EnvStats:
    """One env's numbers. Active items with a due date sit in per-date buckets: there are few
    distinct dates, so overdue = the buckets before today, summed — cheap to keep and to read."""

    __slots__ = ("_dates", "_overdue", "active_services", "buckets", "priority", "status", "total")

    def __init__(self) -> None:
        self.total = 0
        self.status: Counter[str] = Counter()
        self.priority: Counter[str] = Counter()
        self.active_services: Counter[str] = Counter()
        self.buckets: dict[str, set[tuple[int, str]]] = {}
        self._dates: list[str] | None = []
        # Sorted overdue ids per (cutoff, priority rank or None), dropped whenever a bucket changes.
        self._overdue: dict[tuple[str, int | None], list[str]] = {}

    def apply(self, r: Record, sign: int) -> None:
        self.total += sign
        self.status[r["status"]] += sign
        self.priority[r["priority"]] += sign
        if r["status"] not in ACTIVE_STATUSES:
            return
        service = r["service"]
        count = self.active_services[service] + sign
        if count:
            self.active_services[service] = count
        else:
            del self.active_services[service]
        due = r["due_date"]
        if due is None:
            return
        key = (PRIORITY_RANK[r["priority"]], r["id"])
        bucket = self.buckets.get(due)
        if self._overdue:
            self._overdue.clear()
        if sign > 0:
            if bucket is None:
                self.buckets[due] = bucket = set()
                self._dates = None
            bucket.add(key)
        elif bucket is not None:
            bucket.discard(key)
            if not bucket:
                del self.buckets[due]
                self._dates = None

    def overdue_dates(self, cutoff: str) -> list[str]:
        if self._dates is None:
            self._dates = sorted(self.buckets)
        return self._dates[: bisect.bisect_left(self._dates, cutoff)]

    def overdue_count(self, cutoff: str) -> int:
        return sum(len(self.buckets[d]) for d in self.overdue_dates(cutoff))

    def overdue_ids(self, cutoff: str, rank: int | None) -> list[str]:
        """Sorted ids of the overdue items (of one priority rank if given); kept until a bucket
        changes, so repeated listings (the dashboard's alerts) do not walk every overdue item."""
        found = self._overdue.get((cutoff, rank))
        if found is None:
            found = sorted(item_id for d in self.overdue_dates(cutoff) for r, item_id in self.buckets[d]
                           if rank is None or r == rank)
            if len(self._overdue) >= 8:  # yesterday's cutoffs
                self._overdue.clear()
            self._overdue[(cutoff, rank)] = found
        return found

    def overdue_keys(self, cutoff: str) -> Iterator[DueKey]:
        """(due_date, priority rank, id) of overdue items, in the dashboard's order."""
        for d in self.overdue_dates(cutoff):
            for rank, item_id in sorted(self.buckets[d]):
                yield (d, rank, item_id)


class BacklogAggregates:
    def __init__(self) -> None:
        self.envs: dict[str, EnvStats] = {}
        # The last dashboard per (env, day), valid while no record has changed: dashboards are
        # polled far more often than the backlog changes, and top services/overdue rows cost
        # O(services) to assemble.
        self._dashboards: dict[tuple[str | None, str], dict[str, Any]] = {}

    def clear(self) -> None:
        self.envs.clear()
        self._dashboards.clear()

    def add(self, record: Record) -> None:
        stats = self.envs.get(record["env"])
        if stats is None:
            stats = self.envs[record["env"]] = EnvStats()
        stats.apply(record, +1)
        if self._dashboards:
            self._dashboards.clear()

    def remove(self, record: Record) -> None:
        stats = self.envs.get(record["env"])
        if stats is not None:
            stats.apply(record, -1)
        if self._dashboards:
            self._dashboards.clear()

    def overdue_ids(self, *, env: str | None, today: date, priority: str | None = None) -> list[str]:
        """Overdue items' ids in id order, of one priority if given: what an ``overdue=true``
        listing has to look at, instead of every item. One env's list is shared with later
        calls until a due-date bucket changes: callers read it, never change it."""
        selected = [self.envs[env]] if env is not None and env in self.envs else (
            [] if env is not None else list(self.envs.values()))
        cutoff = today.isoformat()
        rank = PRIORITY_RANK[priority] if priority is not None else None
        if len(selected) == 1:
            return selected[0].overdue_ids(cutoff, rank)
        return list(heapq.merge(*(s.overdue_ids(cutoff, rank) for s in selected)))

    def dashboard(self, items: dict[str, Record], *, env: str | None, today: date, now: datetime) -> dict[str, Any]:
        """The dashboard as of ``now``. Its lists are shared with later calls until a record
        changes: callers read them, never change them."""
        key = (env, today.isoformat())
        cached = self._dashboards.get(key)
        if cached is None:
            if len(self._dashboards) >= 64:  # yesterday's days, unknown envs
                self._dashboards.clear()
            cached = self._dashboards[key] = self._compute(items, env=env, today=today, now=now)
        return {**cached, "generated_at": iso_z(now)}

    def _compute(self, items: dict[str, Record], *, env: str | None, today: date, now: datetime) -> dict[str, Any]:
        selected = [self.envs[env]] if env is not None and env in self.envs else (
            [] if env is not None else list(self.envs.values()))
        cutoff = today.isoformat()
        status: Counter[str] = Counter()
        priority: Counter[str] = Counter()
        services: Counter[str] = Counter()
        for s in selected:
            status.update(s.status)
            priority.update(s.priority)
            services.update(s.active_services)
        overdue_count = sum(s.overdue_count(cutoff) for s in selected)
        first = itertools.islice(heapq.merge(*(s.overdue_keys(cutoff) for s in selected)), OVERDUE_LIMIT)
        overdue = [{f: items[key[2]][f] for f in OVERDUE_FIELDS} for key in first]
        top = heapq.nsmallest(TOP_SERVICES, services.items(), key=lambda kv: (-kv[1], kv[0]))  # = sorted()[:n]
        return assemble(
            env=env, now=now, total=sum(s.total for s in selected), status_counts=dict(status),
            priority_counts=dict(priority), overdue_count=overdue_count, overdue=overdue, top_services=top,
        )
