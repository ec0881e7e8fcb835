"""The dashboard response (RUNBOOK §6): its shape and orderings, shared by every backend.

In-Python backends fill it from ``aggregates.BacklogAggregates``; Postgres from SQL aggregates.
The contract tests compare both against an independently written expectation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.router.clock import iso_z
from services.router.domain.enums import ALL_PRIORITIES, ALL_STATUSES

OVERDUE_LIMIT = 50
TOP_SERVICES = 10
OVERDUE_FIELDS = ("id", "env", "service", "category", "priority", "status", "owner", "due_date", "title")
ACCEPTED_FIELDS = (*OVERDUE_FIELDS, "accepted")


def assemble(
    *, env: str | None, now: datetime, total: int, status_counts: dict[str, int],
    priority_counts: dict[str, int], overdue_count: int, overdue: list[dict[str, Any]],
    top_services: list[tuple[str, int]], accepted_count: int = 0, accepted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The response shape, in one place for every backend. ``accepted``: active items accepted now
    (``until`` today or later), by ``until`` then id, at most ``OVERDUE_LIMIT``."""
    return {
        "env": env,
        "generated_at": iso_z(now),
        "total": total,
        "status_counts": {s: status_counts.get(s, 0) for s in ALL_STATUSES},
        "priority_counts": {p: priority_counts.get(p, 0) for p in ALL_PRIORITIES},
        "overdue_count": overdue_count,
        "overdue": overdue,
        "top_services": [{"service": s, "count": c} for s, c in top_services],
        "accepted_count": accepted_count,
        "accepted": accepted or [],
    }
