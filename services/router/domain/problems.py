"""Problems: one row per lineage (env, service, category) with active items — pure, no I/O.

Weekly generation makes a new item for the same problem every ISO week it stays open, so a
list of items shows one problem many times with the same title. A problem row folds them:

- ``items``: the lineage's active item ids, newest first;
- ``first_week``: the ISO week of its oldest active item (the week in its dedupe key; for an
  item without one, the week it was created);
- ``weeks_open``: the weeks from ``first_week`` through the current week, both counted (at least 1);
- ``oldest_due_date``: the earliest date from which one of them counts as overdue — its due date,
  or for an accepted risk the acceptance's hold when that is later (``transitions.counted_due``);
  null when none has a due date. So ``overdue`` is exactly ``oldest_due_date`` before today;
- ``priority``: the highest; ``owner``: the newest item's; ``overdue``: any of them is (an accepted
  risk not while its acceptance holds, as in every overdue figure).

Rows are ordered by priority, then weeks open (most first), then service and category
(``row_order``). The memory and JSONL stores keep each lineage's items and build its row with
``group_row`` when they change (``stores/insight_cache.py``); the Postgres store computes the
same in SQL (``stores/pg_trends.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from services.router.domain.acceptance import hold
from services.router.domain.dedupe import week_of_key
from services.router.domain.enums import PRIORITY_RANK
from services.router.domain.transitions import counted_due, is_overdue
from services.router.domain.weeks import iso_week, week_start

MAX_PROBLEMS = 500
DEFAULT_PROBLEMS = 100
Record = dict[str, Any]


def item_monday(record: Record) -> date:
    """The Monday of the week an item belongs to: its key's week, else its creation week."""
    label = week_of_key(record["dedupe_key"])
    if label is not None:
        return week_start(label)
    created = date.fromisoformat(record["created_at"][:10])
    return created - timedelta(days=created.weekday())


def group_row(service: str, category: str, members: Iterable[Record], today: date) -> Record:
    """The row of one lineage from its active items (at least one). The indexed stores keep
    each lineage's members and rebuild only the rows of lineages that changed."""
    ordered = sorted(members, key=lambda r: r["id"], reverse=True)
    first = min(item_monday(r) for r in ordered)
    dues = [d for d in (counted_due(r["due_date"], hold(r.get("accepted"))) for r in ordered) if d is not None]
    this_monday = today - timedelta(days=today.weekday())
    return {
        "service": service, "category": category, "items": [r["id"] for r in ordered],
        "weeks_open": max(1, (this_monday - first).days // 7 + 1), "first_week": iso_week(first),
        "oldest_due_date": min(dues) if dues else None,
        "priority": min((r["priority"] for r in ordered), key=PRIORITY_RANK.__getitem__),
        "owner": ordered[0]["owner"],
        "overdue": any(is_overdue(r["status"], r["due_date"], today, hold(r.get("accepted"))) for r in ordered),
    }


def row_order(row: Record) -> tuple[int, int, str, str]:
    """Rows sort by this key: priority, then weeks open (most first), then service and category."""
    return (PRIORITY_RANK[row["priority"]], -row["weeks_open"], row["service"], row["category"])
