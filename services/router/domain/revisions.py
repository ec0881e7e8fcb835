"""Lifecycle changes of one item — acceptance, its expiry, close on clear, reassignment (pure).

A ``Revision`` says what to change and under which condition; ``plan_revision`` applies it to
the current record under the store's lock, exactly like ``changes.plan_status``: the new record
and its one event, or ``unchanged`` (no event, nothing written) when the condition no longer
holds. That makes the system's revisions idempotent — two jobs expiring the same acceptance, a
generation re-run closing the same cleared item, two replicas racing — one event, never two.

A revision is plain JSON (a pydantic model), so the Auto store journals it during an outage and
replays it against Postgres with the same planner. ``plan_note`` is the event-only counterpart
(an ``escalated`` event, the comment of a clearing): the item itself is not touched.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.router.clock import iso_z
from services.router.domain import acceptance
from services.router.domain.changes import Change, Record, make_event
from services.router.domain.enums import ACTIVE_STATUSES, EventType, Status

Kind = Literal["accept", "unaccept", "expire_acceptance", "close_on_clear", "reassign_owner"]


class Revision(BaseModel):
    """One lifecycle change. Fields by kind:

    * ``accept``: ``accepted`` (the value to store; see ``domain.acceptance``);
    * ``unaccept``: nothing;
    * ``expire_acceptance``: ``today`` — expires only an acceptance whose ``until`` is before it;
    * ``close_on_clear``: ``message`` and ``meta`` (merged into the item's meta) — only an active item;
    * ``reassign_owner``: ``owner``, ``expected_owner`` (moved only while it still has that owner),
      ``message`` and ``meta``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    accepted: dict[str, Any] | None = None
    today: date | None = None
    owner: str | None = None
    expected_owner: str | None = None
    message: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


def _revised(existing: Record, now: datetime, **fields: Any) -> Record:
    return {**existing, **fields, "updated_at": iso_z(now), "rev": existing["rev"] + 1}


def plan_revision(existing: Record, rev: Revision, *, now: datetime, actor: str,
                  on_behalf_of: str | None = None) -> Change:
    """The change ``rev`` makes to ``existing`` (an ``accept`` of a closed item raises ``Conflict``)."""
    unchanged = Change("unchanged", existing, None)
    current = existing.get("accepted")
    if rev.kind == "accept":
        acceptance.check_acceptable(existing)
        new = rev.accepted or {}
        if isinstance(current, dict) and all(current.get(k) == new.get(k) for k in ("until", "reason")):
            return unchanged
        item = _revised(existing, now, accepted=new)
        meta = {"until": new.get("until"), "reason": new.get("reason")}
        if isinstance(current, dict):
            meta["previous_until"] = current.get("until")
        return _change(item, EventType.ACCEPTED, now, actor, on_behalf_of,
                       f"risk accepted until {new.get('until')}: {new.get('reason')}", meta)
    if rev.kind == "unaccept":
        if not isinstance(current, dict):
            return unchanged
        item = _revised(existing, now, accepted=None)
        return _change(item, EventType.UNACCEPTED, now, actor, on_behalf_of,
                       f"acceptance until {current.get('until')} withdrawn",
                       {"until": current.get("until"), "reason": current.get("reason")})
    if rev.kind == "expire_acceptance":
        if rev.today is None or not acceptance.is_expired(existing, rev.today):
            return unchanged
        assert isinstance(current, dict)
        fields: Record = {"accepted": None}
        # ``hold``: the last day the acceptance kept the item from being overdue (the trends read the
        # state before this event from it).
        meta = {"until": current.get("until"), "reason": current.get("reason"), "hold": acceptance.hold(current)}
        restart = current.get("due_on_expiry")
        message = f"acceptance until {current.get('until')} expired; the item counts again"
        if isinstance(restart, str) and existing["status"] in ACTIVE_STATUSES:
            due = existing.get("due_date")
            new_due = max(due, restart) if isinstance(due, str) else restart
            if new_due != due:
                fields["due_date"] = new_due
                meta.update(due_from=due, due_to=new_due)
                message += f"; due date restarted: {due or 'none'} -> {new_due}"
        return _change(_revised(existing, now, **fields), EventType.ACCEPTANCE_EXPIRED, now, actor, on_behalf_of,
                       message, meta)
    if rev.kind == "close_on_clear":
        if existing["status"] not in ACTIVE_STATUSES:
            return unchanged
        item = _revised(existing, now, status=Status.DONE.value, meta={**(existing.get("meta") or {}), **rev.meta})
        return _change(item, EventType.STATUS_CHANGED, now, actor, on_behalf_of, rev.message,
                       {"from": existing["status"], "to": Status.DONE.value, **rev.meta})
    # reassign_owner
    if existing["status"] not in ACTIVE_STATUSES or existing["owner"] != rev.expected_owner \
            or rev.owner is None or rev.owner == existing["owner"]:
        return unchanged
    item = _revised(existing, now, owner=rev.owner, meta={**(existing.get("meta") or {}), **rev.meta})
    return _change(item, EventType.OWNER_CHANGED, now, actor, on_behalf_of,
                   rev.message or f"owner {existing['owner']} -> {rev.owner}",
                   {"from": existing["owner"], "to": rev.owner, "fields": ["owner", "meta"], "reason": rev.message,
                    "by_rule": True})


def _change(item: Record, kind: EventType, now: datetime, actor: str, on_behalf_of: str | None, message: str,
            meta: Record) -> Change:
    return Change("updated", item, make_event(item, kind, now=now, actor=actor, message=message, meta=meta,
                                              on_behalf_of=on_behalf_of))


def plan_note(existing: Record, kind: EventType, message: str, meta: Record, *, now: datetime, actor: str,
              on_behalf_of: str | None = None) -> Record:
    """An event-only write (``escalated``, the comment of a clearing): the item is untouched."""
    return make_event(existing, kind, now=now, actor=actor, message=message, meta=meta, on_behalf_of=on_behalf_of)
