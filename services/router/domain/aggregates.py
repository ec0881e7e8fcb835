"""Dashboard numbers kept up to date as records change, so a dashboard costs O(shown), not O(items).

Each env keeps counters by status and priority, active items per service, and the active items
that have a due date in (due_date, priority rank, id) order: overdue items are a prefix of that
order (due_date < today), so their count is one bisect and the first 50 are a slice.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from datetime import date, datetime
from typing import Any

from sortedcontainers import SortedList

from services.router.domain.dashboard import OVERDUE_FIELDS, OVERDUE_LIMIT, PRIORITY_RANK, TOP_SERVICES, assemble
from services.router.domain.enums import ACTIVE_STATUSES

Record = dict[str, Any]
DueKey = tuple[str, int, str]


class EnvStats:
    __slots__ = ("active_services", "due", "priority", "status", "total")

    def __init__(self) -> None:
        self.total = 0
        self.status: Counter[str] = Counter()
        self.priority: Counter[str] = Counter()
        self.active_services: Counter[str] = Counter()
        self.due: SortedList = SortedList()

    def apply(self, r: Record, sign: int) -> None:
        self.total += sign
        self.status[r["status"]] += sign
        self.priority[r["priority"]] += sign
        if r["status"] in ACTIVE_STATUSES:
            self.active_services[r["service"]] += sign
            if self.active_services[r["service"]] == 0:
                del self.active_services[r["service"]]
            if r["due_date"] is not None:
                key: DueKey = (r["due_date"], PRIORITY_RANK[r["priority"]], r["id"])
                if sign > 0:
                    self.due.add(key)
                else:
                    self.due.discard(key)

    def overdue_count(self, cutoff: str) -> int:
        return int(self.due.bisect_left((cutoff,)))


class BacklogAggregates:
    def __init__(self) -> None:
        self.envs: dict[str, EnvStats] = {}

    def clear(self) -> None:
        self.envs.clear()

    def add(self, record: Record) -> None:
        stats = self.envs.get(record["env"])
        if stats is None:
            stats = self.envs[record["env"]] = EnvStats()
        stats.apply(record, +1)

    def remove(self, record: Record) -> None:
        stats = self.envs.get(record["env"])
        if stats is not None:
            stats.apply(record, -1)

    def dashboard(self, items: dict[str, Record], *, env: str | None, today: date, now: datetime) -> dict[str, Any]:
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
        first = itertools.islice(
            heapq.merge(*(itertools.islice(s.due, 0, s.overdue_count(cutoff)) for s in selected)), OVERDUE_LIMIT)
        overdue = [{f: items[key[2]][f] for f in OVERDUE_FIELDS} for key in first]
        top = sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SERVICES]
        return assemble(
            env=env, now=now, total=sum(s.total for s in selected), status_counts=dict(status),
            priority_counts=dict(priority), overdue_count=overdue_count, overdue=overdue, top_services=top,
        )
