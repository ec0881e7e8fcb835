"""Edits a writer makes to an item's owner and due date, as pure planners every backend applies.

Upserts never change an existing item's due date, and change its owner only as a side effect
of sending the whole item again; a person reassigning work or moving a deadline needs neither.
These planners change one field and write one event (``owner_changed`` / ``due_date_changed``,
``meta`` ``{"from", "to"}``), or nothing when the value is already set. A done or canceled item
is history: it is refused, naming the moves that would make it editable again.
"""

from __future__ import annotations

from datetime import date, datetime

from services.router.clock import iso_z
from services.router.domain.changes import Change, Record, make_event
from services.router.domain.enums import CLOSED_STATUSES, EventType, Status
from services.router.domain.transitions import allowed_moves
from services.router.errors import Conflict

EDITED_FIELDS = {"owner": "owner", "due_date": "due date"}


def refuse_closed(existing: Record, field: str) -> None:
    """A done or canceled item keeps the owner and due date it was closed with."""
    status = existing["status"]
    if status in CLOSED_STATUSES:
        allowed = allowed_moves(Status(status))
        raise Conflict(
            f"cannot change the {EDITED_FIELDS[field]} of a {status} item; allowed: {', '.join(allowed)} "
            "(reopen it first)", current=status, field=field, allowed=allowed)


def plan_owner(existing: Record, owner: str, *, now: datetime, actor: str, message: str = "",
               on_behalf_of: str | None = None) -> Change:
    refuse_closed(existing, "owner")
    if existing["owner"] == owner:
        return Change("unchanged", existing, None)
    item = {**existing, "owner": owner, "updated_at": iso_z(now), "rev": existing["rev"] + 1}
    event = make_event(item, EventType.OWNER_CHANGED, now=now, actor=actor,
                       message=message or f"owner {existing['owner']} -> {owner}",
                       meta={"from": existing["owner"], "to": owner, "fields": []}, on_behalf_of=on_behalf_of)
    return Change("updated", item, event)


def plan_due_date(existing: Record, due_date: date | None, *, now: datetime, actor: str,
                  message: str = "", on_behalf_of: str | None = None) -> Change:
    refuse_closed(existing, "due_date")
    new = due_date.isoformat() if due_date is not None else None
    old = existing["due_date"]
    if old == new:
        return Change("unchanged", existing, None)
    item = {**existing, "due_date": new, "updated_at": iso_z(now), "rev": existing["rev"] + 1}
    event = make_event(item, EventType.DUE_DATE_CHANGED, now=now, actor=actor,
                       message=message or f"due date {old or 'none'} -> {new or 'none'}",
                       meta={"from": old, "to": new}, on_behalf_of=on_behalf_of)
    return Change("updated", item, event)
