"""Dashboard numbers (RUNBOOK §6), computed the same way for every in-Python backend.

The Postgres store computes the same shape with SQL aggregates; the contract tests compare
both against an independently written expectation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from services.router.clock import iso_z
from services.router.domain.enums import ACTIVE_STATUSES, ALL_PRIORITIES, ALL_STATUSES

OVERDUE_LIMIT = 50
TOP_SERVICES = 10
PRIORITY_RANK = {p: i for i, p in enumerate(ALL_PRIORITIES)}
OVERDUE_FIELDS = ("id", "service", "category", "priority", "status", "owner", "due_date", "title")


def overdue_sort_key(record: dict[str, Any]) -> tuple[str, int, str]:
    """Oldest due date first, then the more urgent priority, then id for a stable order."""
    return (record["due_date"], PRIORITY_RANK[record["priority"]], record["id"])


def build_dashboard(
    records: Iterable[dict[str, Any]], *, env: str | None, today: date, now: datetime
) -> dict[str, Any]:
    status_counts = dict.fromkeys(ALL_STATUSES, 0)
    priority_counts = dict.fromkeys(ALL_PRIORITIES, 0)
    services: Counter[str] = Counter()
    overdue: list[dict[str, Any]] = []
    cutoff = today.isoformat()
    total = 0
    for r in records:
        if env is not None and r["env"] != env:
            continue
        total += 1
        status = r["status"]
        status_counts[status] += 1
        priority_counts[r["priority"]] += 1
        if status in ACTIVE_STATUSES:
            services[r["service"]] += 1
            due = r["due_date"]
            if due is not None and due < cutoff:
                overdue.append(r)
    overdue.sort(key=overdue_sort_key)
    return assemble(
        env=env, now=now, total=total, status_counts=status_counts,
        priority_counts=priority_counts, overdue_count=len(overdue),
        overdue=[{f: r[f] for f in OVERDUE_FIELDS} for r in overdue[:OVERDUE_LIMIT]],
        top_services=sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SERVICES],
    )


def assemble(
    *, env: str | None, now: datetime, total: int, status_counts: dict[str, int],
    priority_counts: dict[str, int], overdue_count: int, overdue: list[dict[str, Any]],
    top_services: list[tuple[str, int]],
) -> dict[str, Any]:
    """The response shape, in one place for every backend."""
    return {
        "env": env,
        "generated_at": iso_z(now),
        "total": total,
        "status_counts": {s: status_counts.get(s, 0) for s in ALL_STATUSES},
        "priority_counts": {p: priority_counts.get(p, 0) for p in ALL_PRIORITIES},
        "overdue_count": overdue_count,
        "overdue": overdue,
        "top_services": [{"service": s, "count": c} for s, c in top_services],
    }
