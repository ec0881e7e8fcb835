"""How a request changes an item, as pure functions every backend applies the same way.

Each planner takes the current record (or None) and returns a ``Change``: the new record and
the one event it writes, or None when nothing changes — so a no-op writes nothing anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from services.router.clock import iso_z
from services.router.domain.dedupe import manual_key
from services.router.domain.enums import EventType, Status
from services.router.domain.models import ItemInput, new_id
from services.router.domain.transitions import check_transition

Record = dict[str, Any]
# An item record's fields, in the order every backend writes them.
RECORD_FIELDS: tuple[str, ...] = (
    "id", "env", "service", "category", "title", "description", "priority", "status", "owner", "due_date",
    "created_at", "updated_at", "source", "dedupe_key", "evidence_refs", "tags", "meta", "accepted", "rev",
)
Action = Literal["created", "updated", "unchanged"]

# Fields an upsert may change on an existing item (DESIGN §4); everything else is kept.
OPEN = Status.OPEN.value
UPDATABLE_FIELDS: tuple[str, ...] = ("title", "description", "evidence_refs", "tags", "meta")


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    item: Record
    event: Record | None


def dedupe_key_of(inp: ItemInput) -> str:
    return inp.dedupe_key or manual_key(inp.env, inp.service, inp.category, inp.title)


def make_event(
    item: Record, kind: EventType, *, now: datetime, actor: str, message: str, meta: Record,
    on_behalf_of: str | None = None,
) -> Record:
    """One audit event. ``actor`` is the account that made the change; ``on_behalf_of`` the person a
    delegate account named (``X-Acting-User``), present only when there is one."""
    event: Record = {
        "id": new_id("ev_"),
        "item_id": item["id"],
        "ts": iso_z(now),
        "type": kind._value_,  # the plain attribute: ``.value`` is a descriptor call, per event
        "actor": actor,
        "message": message,
        "meta": meta,
        "item_rev": item["rev"],
    }
    if on_behalf_of:
        event["on_behalf_of"] = on_behalf_of
    return event


def plan_upsert(
    existing: Record | None, inp: ItemInput, *, fallback_owner: str, now: datetime, actor: str,
    on_behalf_of: str | None = None,
) -> Change:
    """Create, update (title/description/evidence/tags/meta, explicit owner) or leave alone."""
    if existing is None:
        stamp = iso_z(now)
        item: Record = {
            "id": new_id("bl_"),
            "env": inp.env,
            "service": inp.service,
            "category": inp.category,
            "title": inp.title,
            "description": inp.description,
            "priority": inp.priority._value_,  # ``_value_``: ``.value`` costs a descriptor call
            "status": OPEN,
            "owner": inp.owner or fallback_owner,
            "due_date": inp.due_date.isoformat() if inp.due_date else None,
            "created_at": stamp,
            "updated_at": stamp,
            "source": inp.source._value_,
            "dedupe_key": dedupe_key_of(inp),
            "evidence_refs": list(inp.evidence_refs),
            "tags": list(inp.tags),
            "meta": to_jsonable_python(inp.meta),  # a copy, in JSON types, as updates compare it
            "accepted": None,
            "rev": 1,
        }
        event = make_event(
            item, EventType.CREATED, now=now, actor=actor, message=f"created: {inp.title}",
            meta={"owner": item["owner"], "priority": item["priority"], "source": item["source"]},
            on_behalf_of=on_behalf_of,
        )
        return Change("created", item, event)

    # The updatable fields as ``model_dump(mode="json")`` gives them, read directly (a third of
    # the cost): only ``meta`` (any values) needs converting.
    incoming: Record = {"title": inp.title, "description": inp.description,
                        "evidence_refs": list(inp.evidence_refs), "tags": list(inp.tags),
                        "meta": to_jsonable_python(inp.meta)}
    changed = [f for f in UPDATABLE_FIELDS if existing[f] != incoming[f]]
    owner_change = inp.owner is not None and inp.owner != existing["owner"]
    if not changed and not owner_change:
        return Change("unchanged", existing, None)

    item = {**existing, **{f: incoming[f] for f in changed}}
    item["updated_at"] = iso_z(now)
    item["rev"] = existing["rev"] + 1
    if owner_change:
        item["owner"] = inp.owner
        event = make_event(
            item, EventType.OWNER_CHANGED, now=now, actor=actor,
            message=f"owner {existing['owner']} -> {inp.owner}",
            meta={"from": existing["owner"], "to": inp.owner, "fields": changed}, on_behalf_of=on_behalf_of,
        )
    else:
        event = make_event(
            item, EventType.UPDATED, now=now, actor=actor,
            message=f"updated {', '.join(changed)}", meta={"fields": changed}, on_behalf_of=on_behalf_of,
        )
    return Change("updated", item, event)


def plan_status(
    existing: Record, target: Status, *, now: datetime, actor: str, message: str = "",
    on_behalf_of: str | None = None,
) -> Change:
    """Apply the transition table; a same-status move is a no-op without an event."""
    current = Status(existing["status"])
    if not check_transition(current, target):
        return Change("unchanged", existing, None)
    item = {**existing, "status": target.value, "updated_at": iso_z(now), "rev": existing["rev"] + 1}
    event = make_event(
        item, EventType.STATUS_CHANGED, now=now, actor=actor,
        message=message or f"{current.value} -> {target.value}",
        meta={"from": current.value, "to": target.value}, on_behalf_of=on_behalf_of,
    )
    return Change("updated", item, event)


def plan_comment(existing: Record, message: str, *, now: datetime, actor: str,
                 on_behalf_of: str | None = None) -> Record:
    """A comment is an event only: the item itself (and its retention clock) is untouched."""
    return make_event(existing, EventType.COMMENTED, now=now, actor=actor, message=message, meta={},
                      on_behalf_of=on_behalf_of)
