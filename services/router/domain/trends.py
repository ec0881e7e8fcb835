"""Weekly trends of a backlog, computed from its items and their events — pure, no I/O.

For each ISO week (Monday 00:00 UTC up to the next Monday, exclusive; "the week's end" is the
state just before that next Monday, i.e. at Sunday 23:59:59.999999 UTC):

- ``opened``: items created in the week;
- ``closed``: status changes into ``done`` or ``canceled`` in the week (reopened and closed
  again counts again);
- ``open_at_end``: items that existed and were active at the week's end;
- ``overdue_at_end``: of those, the ones overdue at that Sunday by the rule of every overdue
  figure (``transitions.is_overdue``): due before it, with the due date they had then, and not
  held by a risk accepted then through that Sunday or later;
- ``p0_open_at_end``: of those, P0 (an item's priority never changes).

An item's status at a moment is the ``from`` of its first status change after that moment
(events ordered by time, then write order), else its current status; its due date likewise
from ``due_date_changed`` events (and an ``acceptance_expired`` that restarted it: ``due_from``);
its acceptance's hold from the first ``accepted`` (``previous_until``: none when absent),
``unaccepted`` (``until``) or ``acceptance_expired`` (``hold``, else ``until``) after it, else
the item's current hold. An accept or unaccept records an expired acceptance's end first
(``tools.backlog_lifecycle``), so the acceptance they replace or withdraw held through their own
day: its ``until`` is as good as its hold for every earlier week's end. Only items still in the
store count: cleanup removes closed items past retention, with their events.

The memory and JSONL stores compute with ``weekly_trends`` below (each item contributes to a
range of weeks at once, so the cost is the items and their recent events, not items times weeks);
the Postgres store computes the same in SQL (``stores/pg_trends.py``); the contract tests check
both against a model that replays every event. The rows are a sum over items, so the memory
and JSONL stores keep computed rows and, when an item changes, take away its old rows and add
its new ones (``add_rows``; ``stores/insight_cache.py``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.router.clock import iso_z
from services.router.domain.acceptance import hold
from services.router.domain.enums import ACTIVE_STATUSES, CLOSED_STATUSES, EventType, Priority
from services.router.domain.transitions import counted_due
from services.router.domain.weeks import iso_week

MAX_WEEKS = 104
DEFAULT_WEEKS = 12
COUNTS = ("opened", "closed", "open_at_end", "overdue_at_end", "p0_open_at_end")
Record = dict[str, Any]
# The events that change an item's state at a week's end: status, due date, acceptance.
STATE_EVENTS = frozenset({EventType.STATUS_CHANGED, EventType.DUE_DATE_CHANGED, EventType.ACCEPTED,
                          EventType.UNACCEPTED, EventType.ACCEPTANCE_EXPIRED})
ACCEPTANCE_EVENTS = frozenset({EventType.ACCEPTED, EventType.UNACCEPTED, EventType.ACCEPTANCE_EXPIRED})


@dataclass(frozen=True, slots=True)
class Week:
    label: str  # 2026-W48
    start: str  # Monday 00:00 UTC, canonical timestamp text (records compare as text)
    end: str  # the next Monday 00:00 UTC: the week holds start <= t < end
    last_day: date  # the Sunday: "overdue at the week's end" is due before this date


def trend_weeks(today: date, count: int) -> list[Week]:
    """The ``count`` ISO weeks ending with ``today``'s, oldest first."""
    monday = today - timedelta(days=today.weekday())
    weeks = []
    for back in range(count - 1, -1, -1):
        start = monday - timedelta(weeks=back)
        begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
        weeks.append(Week(iso_week(start), iso_z(begin), iso_z(begin + timedelta(days=7)),
                          start + timedelta(days=6)))
    return weeks


def empty_rows(weeks: Sequence[Week]) -> list[Record]:
    return [{"week": w.label, **dict.fromkeys(COUNTS, 0)} for w in weeks]


def weekly_trends(weeks: Sequence[Week], items: Iterable[Record],
                  events_of: Callable[[str], Sequence[Record]]) -> list[Record]:
    """The rows for ``weeks`` (consecutive, oldest first) from ``items`` (already narrowed to the
    env/service asked for) and each item's events in write order (``events_of``)."""
    n = len(weeks)
    rows = empty_rows(weeks)
    if n == 0:
        return rows
    starts = [w.start for w in weeks]
    ends = [w.end for w in weeks]
    sundays = [w.last_day.isoformat() for w in weeks]
    first_start, last_end = starts[0], ends[-1]
    # Difference arrays: +1 at the first week an item counts in, -1 after the last.
    diffs = {name: [0] * (n + 1) for name in ("open_at_end", "overdue_at_end", "p0_open_at_end")}

    def add(name: str, lo: int, hi: int) -> None:
        if lo < hi:
            diffs[name][lo] += 1
            diffs[name][hi] -= 1

    for item in items:
        created = item["created_at"]
        if created >= last_end:
            continue
        if created >= first_start:
            rows[bisect.bisect_right(ends, created)]["opened"] += 1
        events = [e for e in events_of(item["id"]) if e["ts"] >= first_start]
        for e in events:
            if e["type"] == EventType.STATUS_CHANGED and (e.get("meta") or {}).get("to") in CLOSED_STATUSES \
                    and e["ts"] < last_end:
                rows[bisect.bisect_right(ends, e["ts"])]["closed"] += 1
        first = bisect.bisect_right(ends, created)  # the first week whose end the item existed at
        p0 = item["priority"] == Priority.P0
        changes = sorted((e for e in events if e["type"] in STATE_EVENTS and e["ts"] >= ends[first]),
                         key=lambda e: e["ts"])  # stable: write order on ties
        if not changes:  # the same state at every week's end from ``first`` on
            _count_range(add, item["status"], counted_due(item["due_date"], hold(item.get("accepted"))), p0,
                         first, n, sundays)
            continue
        for k in range(first, n):
            status, due = _state_at(item, changes, ends[k])
            _count_range(add, status, due, p0, k, k + 1, sundays)
    for name, diff in diffs.items():
        running = 0
        for k in range(n):
            running += diff[k]
            rows[k][name] = running
    return rows


def _state_at(item: Record, changes: Sequence[Record], moment: str) -> tuple[str, str | None]:
    """Status and counted due date (``transitions.counted_due``) just before ``moment``: for each of
    status, due date and hold, the value before the first later change of it, else the current one."""
    status: str | None = None
    due: Any = ...
    held: Any = ...
    for e in changes:
        if e["ts"] < moment:
            continue
        kind, meta = e["type"], e.get("meta") or {}
        if status is None and kind == EventType.STATUS_CHANGED:
            status = meta.get("from")
        if due is ... and kind == EventType.DUE_DATE_CHANGED:
            due = meta.get("from")
        if due is ... and kind == EventType.ACCEPTANCE_EXPIRED and "due_from" in meta:
            due = meta["due_from"]
        if held is ... and kind in ACCEPTANCE_EVENTS:
            held = _hold_before(kind, meta)
        if status is not None and due is not ... and held is not ...:
            break
    return ((status if status is not None else item["status"]),
            counted_due(item["due_date"] if due is ... else due, hold(item.get("accepted")) if held is ... else held))


def _hold_before(kind: str, meta: Record) -> str | None:
    """The acceptance's hold just before an acceptance event (see the module's docstring)."""
    if kind == EventType.ACCEPTED:
        value = meta.get("previous_until")
    elif kind == EventType.UNACCEPTED:
        value = meta.get("until")
    else:
        value = meta.get("hold") or meta.get("until")
    return value if isinstance(value, str) else None


def _count_range(add: Callable[[str, int, int], None], status: str, due: str | None, p0: bool, lo: int, hi: int,
                 sundays: Sequence[str]) -> None:
    """Count an item in weeks ``lo`` ≤ k < ``hi`` for a state it holds at each of their ends
    (``due``: its counted due date)."""
    if status not in ACTIVE_STATUSES:
        return
    add("open_at_end", lo, hi)
    if p0:
        add("p0_open_at_end", lo, hi)
    if due is not None:  # overdue from the first week whose Sunday is after the due date
        add("overdue_at_end", max(lo, bisect.bisect_right(sundays, due)), hi)


def add_rows(total: Sequence[Record], part: Sequence[Record], sign: int) -> None:
    """Add (``sign`` +1) or take away (-1) ``part``'s counts into ``total``, week by week (same weeks).

    ``weekly_trends`` is a sum over items, so the rows of a set of items change by exactly one
    item's rows when that item changes: the indexed stores keep rows up to date this way.
    """
    for into, row in zip(total, part, strict=True):
        for name in COUNTS:
            into[name] += sign * row[name]
