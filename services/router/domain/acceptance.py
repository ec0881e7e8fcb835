"""Risk acceptance: an item accepted until a date counts in no overdue figure until then (pure).

An item's ``accepted`` is None or ``{until, reason, by, at}`` (plus ``on_behalf_of`` when a person
acted through a delegate account, and ``due_on_expiry`` when the policy restarts the due date at
expiry). The acceptance holds *through* ``until`` (inclusive): from the next day the item counts
again, without any write — the overdue rule compares dates (``hold``), so every backend and every
reader agrees at once. The ``acceptance_expired`` event (and the due date's restart) is written
later, by whichever job or write meets the expired acceptance first (``tools.lifecycle``).

``hold`` is the last day on which the item cannot be overdue: ``until``, or — when the due date
restarts at expiry — the restarted due date itself, so the moment the item counts again is the
same before and after the restart is written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from services.router.clock import iso_z
from services.router.domain.enums import ACTIVE_STATUSES
from services.router.errors import Conflict

Record = dict[str, Any]


def hold(accepted: Any) -> str | None:
    """``YYYY-MM-DD`` through which an accepted item is not overdue, or None (not accepted)."""
    if not isinstance(accepted, dict):
        return None
    value = accepted.get("due_on_expiry") or accepted.get("until")
    return value if isinstance(value, str) else None


def until_of(record: Record) -> str | None:
    accepted = record.get("accepted")
    if not isinstance(accepted, dict):
        return None
    until = accepted.get("until")
    return until if isinstance(until, str) else None


def is_accepted(record: Record, today: date) -> bool:
    """Accepted now: an acceptance whose ``until`` is today or later."""
    until = until_of(record)
    return until is not None and until >= today.isoformat()


def is_expired(record: Record, today: date) -> bool:
    """An acceptance whose ``until`` has passed and that nobody has recorded as expired yet."""
    until = until_of(record)
    return until is not None and until < today.isoformat()


def check_until(until: date, *, today: date, max_days: int) -> None:
    """``until`` must be after today and at most ``max_days`` ahead (``lifecycle.max_accept_days``).

    A ``Conflict`` (409), not a validation error: the date is well formed, the clock refuses it (as
    a future ``as_of`` is refused)."""
    if until <= today:
        raise Conflict(f"until: {until.isoformat()} is not in the future (today is {today.isoformat()})",
                       field="until", today=today.isoformat())
    latest = today + timedelta(days=max_days)
    if until > latest:
        raise Conflict(
            f"until: {until.isoformat()} is more than lifecycle.max_accept_days ({max_days}) ahead; "
            f"the latest allowed is {latest.isoformat()}", field="until", max_accept_days=max_days)


def check_acceptable(record: Record) -> None:
    """Only work still to do can be accepted: a done or canceled item has nothing to hold back."""
    if record["status"] not in ACTIVE_STATUSES:
        raise Conflict(f"item {record['id']} is {record['status']}; only open, in_progress or blocked items can be "
                       "accepted", id=record["id"], status=record["status"])


def acceptance(*, until: date, reason: str, by: str, now: datetime, on_behalf_of: str | None = None,
               due_on_expiry: date | None = None) -> Record:
    """The ``accepted`` value an item stores (``by``: the person when one was named, else the account)."""
    out: Record = {"until": until.isoformat(), "reason": reason, "by": on_behalf_of or by, "at": iso_z(now)}
    if on_behalf_of:
        out["account"] = by
    if due_on_expiry is not None:
        out["due_on_expiry"] = due_on_expiry.isoformat()
    return out


def restarted_due(until: date, due_days: int) -> date:
    """The due date an item gets when its acceptance ends: ``due_days`` after the first day it counts again."""
    return until + timedelta(days=1 + due_days)
