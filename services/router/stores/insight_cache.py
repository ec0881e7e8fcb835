"""Problems and trends of the memory and JSONL stores, kept up to date as records change.

Computing either from every item costs O(items) per call; after a write, a call here costs
what changed. ``ItemIndex`` feeds every record change (old version, new version) — from writes,
refreshes that parse other processes' lines, and loads — into ``InsightCache.change``, the same
stream that keeps the dashboard numbers; nothing is kept until the first call asks for it.

- Problems: per env, each lineage's (service, category) active items; a lineage whose members
  changed gets its row rebuilt by ``domain.problems.group_row``, the others keep theirs. Rows
  depend on the day (weeks open, overdue): a new day rebuilds every row once.
- Trends: the rows of each (env, service, weeks) asked for. ``domain.trends.weekly_trends`` is
  a sum over items, so a change takes away the item's old rows and adds its new ones — exact
  whatever the change's time (a clock moved back, old lines from another process). Cleanup
  removes items with their events, so it drops every trends entry (the next call recomputes).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from services.router.domain.enums import ACTIVE_STATUSES
from services.router.domain.problems import group_row, row_order
from services.router.domain.trends import Week, add_rows, weekly_trends

Record = dict[str, Any]
Group = tuple[str, str]  # (service, category)
SortKey = tuple[int, int, str, str]
TrendKey = tuple[str | None, str | None, str, int]  # env, service, first week's start, weeks
EventsOf = Callable[[Record], Sequence[Record]]
MAX_TREND_ENTRIES = 32  # scopes asked for on one day; each costs a little on every change in it
BULK_CHANGES = 2_000  # changes x trends entries above which (and above 5% of the items) entries are dropped
REBUILD_FROM = 64  # dirty lineages from which sorting every key beats inserting each


class EnvProblems:
    """One env's lineages, their rows for ``today`` and the rows' order."""

    __slots__ = ("by_service", "dirty", "keys", "listing", "members", "order", "rows", "today")

    def __init__(self) -> None:
        self.members: dict[Group, dict[str, Record]] = {}
        self.by_service: dict[str, set[str]] = {}
        self.rows: dict[Group, Record] = {}
        self.keys: dict[Group, SortKey] = {}
        self.order: list[SortKey] = []  # every row's key, sorted
        self.listing: list[Record] = []  # every row, in that order
        self.dirty: set[Group] = set()
        self.today: date | None = None

    def add(self, record: Record) -> None:
        group = (record["service"], record["category"])
        members = self.members.get(group)
        if members is None:
            members = self.members[group] = {}
            self.by_service.setdefault(group[0], set()).add(group[1])
        members[record["id"]] = record
        self.dirty.add(group)

    def remove(self, record: Record) -> None:
        group = (record["service"], record["category"])
        members = self.members.get(group)
        if members is not None and members.pop(record["id"], None) is not None:
            self.dirty.add(group)

    def rows_for(self, today: date, service: str | None) -> list[Record]:
        """The rows (shared: callers read them, never change them), of one service if given."""
        if today != self.today:
            self.today = today
            self.dirty.update(self.members)
        if self.dirty:
            self._rebuild()
        if service is not None:
            return sorted((self.rows[(service, c)] for c in self.by_service.get(service, ())), key=row_order)
        return self.listing

    def _rebuild(self) -> None:
        assert self.today is not None
        many = len(self.dirty) >= REBUILD_FROM
        for group in self.dirty:
            old = self.keys.pop(group, None)
            if old is not None and not many:
                at = bisect.bisect_left(self.order, old)
                del self.order[at]
                del self.listing[at]
            members = self.members.get(group)
            if not members:
                self.rows.pop(group, None)
                self.members.pop(group, None)
                categories = self.by_service.get(group[0])
                if categories is not None:
                    categories.discard(group[1])
                    if not categories:
                        del self.by_service[group[0]]
                continue
            row = self.rows[group] = group_row(group[0], group[1], members.values(), self.today)
            key = self.keys[group] = row_order(row)
            if not many:
                at = bisect.bisect_left(self.order, key)
                self.order.insert(at, key)
                self.listing.insert(at, row)
        if many:
            self.order = sorted(self.keys.values())
            self.listing = [self.rows[(k[2], k[3])] for k in self.order]
        self.dirty.clear()


def rows_of(weeks: Sequence[Week], record: Record, events: Sequence[Record]) -> list[Record]:
    """One version of one record's share of the rows, with the events it had then."""
    return weekly_trends(weeks, (record,), lambda _: events)


class TrendEntry:
    """The rows of one scope for one run of weeks, kept equal to ``weekly_trends`` of its items."""

    __slots__ = ("env", "rows", "service", "weeks")

    def __init__(self, env: str | None, service: str | None, weeks: Sequence[Week], rows: list[Record]) -> None:
        self.env, self.service, self.weeks, self.rows = env, service, list(weeks), rows

    def covers(self, record: Record) -> bool:
        return (self.env is None or record["env"] == self.env) and (self.service is None
                                                                     or record["service"] == self.service)


class InsightCache:
    """Problems per env and trends per scope; idle (changes ignored) until first asked."""

    def __init__(self) -> None:
        # No reference back to the index (its events are passed in with each change): a cycle
        # would keep a closed store's whole index alive until a full collection.
        self._problems: dict[str, EnvProblems] | None = None
        self._trends: dict[TrendKey, TrendEntry] = {}

    @property
    def active(self) -> bool:
        return self._problems is not None or bool(self._trends)

    def clear(self) -> None:
        self._problems = None
        self._trends.clear()

    def forget_trends(self) -> None:
        """Items are going with their events (cleanup): their old rows can no longer be computed."""
        self._trends.clear()

    def changes(self, pending: Sequence[tuple[Record | None, Record | None]], items: int,
                events_of: EventsOf) -> None:
        """Record changes in the order the index saw them (``items``: how many it holds now;
        ``events_of``: a record's events as of that version, its ``rev``).

        A change costs each trends entry its item's rows; past a share of the items (a bulk
        import, a long-idle reader catching up) recomputing an entry on its next call is cheaper.
        """
        if self._trends and len(pending) * len(self._trends) > max(BULK_CHANGES, items // 20):
            self._trends.clear()
        for old, new in pending:
            self.change(old, new, events_of)

    def change(self, old: Record | None, new: Record | None, events_of: EventsOf) -> None:
        """One record's change (None: absent before / removed), in the order the index saw them."""
        if self._problems is not None:
            if old is not None and old["status"] in ACTIVE_STATUSES:
                found = self._problems.get(old["env"])
                if found is not None:
                    found.remove(old)
            if new is not None and new["status"] in ACTIVE_STATUSES:
                found = self._problems.get(new["env"])
                if found is None:
                    found = self._problems[new["env"]] = EnvProblems()
                found.add(new)
        for entry in self._trends.values():
            for record, sign in ((old, -1), (new, +1)):
                if record is not None and entry.covers(record):
                    add_rows(entry.rows, rows_of(entry.weeks, record, events_of(record)), sign)

    def problems(self, items: Iterable[Record], env: str, service: str | None, today: date) -> list[Record]:
        """Rows of ``env`` (of one ``service`` if given; shared: callers read them, never change
        them); ``items``: every record, read on first use only."""
        if self._problems is None:
            self._problems = {}
            for record in items:
                if record["status"] in ACTIVE_STATUSES:
                    found = self._problems.get(record["env"])
                    if found is None:
                        found = self._problems[record["env"]] = EnvProblems()
                    found.add(record)
        found = self._problems.get(env)
        return found.rows_for(today, service) if found is not None else []

    def trends(self, items: Callable[[], Iterable[Record]], events_of: Callable[[str], Sequence[Record]],
               env: str | None, service: str | None, weeks: Sequence[Week]) -> list[Record]:
        """Rows for ``weeks`` (shared: callers read them, never change them); computed from
        ``items()`` (every record) and ``events_of`` (an item's current events) on the first
        call of a scope and weeks."""
        key = (env, service, weeks[0].start if weeks else "", len(weeks))
        entry = self._trends.get(key)
        if entry is None:
            current = weeks[-1].end if weeks else ""
            for stale in [k for k, e in self._trends.items() if e.weeks and e.weeks[-1].end != current]:
                del self._trends[stale]  # an earlier week's runs: the clock has moved on
            if len(self._trends) >= MAX_TREND_ENTRIES:
                del self._trends[next(iter(self._trends))]
            chosen = [r for r in items() if (env is None or r["env"] == env)
                      and (service is None or r["service"] == service)]
            entry = self._trends[key] = TrendEntry(env, service, weeks, weekly_trends(weeks, chosen, events_of))
        return entry.rows
