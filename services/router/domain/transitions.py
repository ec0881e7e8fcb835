"""Status transition table (DESIGN §3) and the overdue rule."""

from __future__ import annotations

from datetime import date

from services.router.domain.enums import ACTIVE_STATUSES, Status
from services.router.errors import TransitionRefused

# Any active status may move to any other status; closed ones may only be reopened.
ALLOWED_MOVES: dict[Status, frozenset[Status]] = {
    **{s: frozenset(Status) - {s} for s in (Status.OPEN, Status.IN_PROGRESS, Status.BLOCKED)},
    Status.DONE: frozenset({Status.OPEN}),
    Status.CANCELED: frozenset({Status.OPEN}),
}


def allowed_moves(current: Status) -> list[str]:
    """Sorted target statuses, for error messages people can act on."""
    return sorted(s.value for s in ALLOWED_MOVES[current])


def check_transition(current: Status, target: Status) -> bool:
    """True when the move changes something, False for a same-status no-op.

    Raises TransitionRefused naming the allowed moves otherwise.
    """
    if current == target:
        return False
    if target not in ALLOWED_MOVES[current]:
        allowed = allowed_moves(current)
        raise TransitionRefused(
            f"cannot move from {current.value} to {target.value}; allowed: {', '.join(allowed)}",
            current=current.value,
            requested=target.value,
            allowed=allowed,
        )
    return True


def is_overdue(status: str, due_date: str | None, today: date, hold: str | None = None) -> bool:
    """Active and due strictly before today (UTC), and not held by an accepted risk through today
    (``hold``: ``domain.acceptance.hold``). Dates compare as ISO strings."""
    if due_date is None or status not in ACTIVE_STATUSES:
        return False
    day = today.isoformat()
    return due_date < day and (hold is None or hold < day)


def counted_due(due_date: str | None, hold: str | None) -> str | None:
    """The date ``is_overdue`` in effect compares with today: the due date, or an accepted risk's
    hold when that is later (the item is overdue once both are past). None: never overdue."""
    if due_date is None:
        return None
    return hold if hold is not None and hold > due_date else due_date
