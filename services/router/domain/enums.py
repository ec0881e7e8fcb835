"""The closed vocabularies of the backlog."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELED = "canceled"


class Priority(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Source(StrEnum):
    WEEKLY_PRESSURE_DIGEST = "weekly_pressure_digest"
    DAILY_RISK_DIGEST = "daily_risk_digest"
    MANUAL = "manual"


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    COMMENTED = "commented"
    OWNER_CHANGED = "owner_changed"
    ACCEPTED = "accepted"
    UNACCEPTED = "unaccepted"
    ACCEPTANCE_EXPIRED = "acceptance_expired"
    ESCALATED = "escalated"
    DUE_DATE_CHANGED = "due_date_changed"


ACTIVE_STATUSES: frozenset[str] = frozenset({Status.OPEN, Status.IN_PROGRESS, Status.BLOCKED})
CLOSED_STATUSES: frozenset[str] = frozenset({Status.DONE, Status.CANCELED})
ALL_STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
ALL_PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(ALL_PRIORITIES)}  # by value: members hash as theirs
