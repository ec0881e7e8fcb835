"""``backlog_tool``: read and change backlog items (DESIGN §9).

Each action declares its entitlement: reads ``tools.backlog.read``, item writes
``tools.backlog.write``, cleanup ``tools.backlog.admin``. Every write accepts ``dry_run`` and
then returns the same plan without writing.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from services.router.alerts.service import current_alerts
from services.router.domain.changes import dedupe_key_of, plan_comment, plan_status, plan_upsert
from services.router.domain.dedupe import week_of_key
from services.router.domain.enums import Status
from services.router.domain.models import CommentText, ItemId, ItemInput, Slug, Text
from services.router.domain.queries import ItemQuery
from services.router.domain.strict import JSON_INTEGER, Flag
from services.router.errors import NotFound
from services.router.stores.base import cleanup_cutoff
from services.router.tools.acceptance_expiry import expire_acceptances, expire_if_due
from services.router.tools.context import ToolContext
from services.router.tools.known_envs import env_status
from services.router.tools.registry import ToolRegistry
from services.router.trackers.status import item_tracker

TOOL = "backlog_tool"
AREA = "backlog"
EXPLICIT_OWNER = "explicit owner in the upsert"


class ItemRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId


class DashboardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = None


class UpsertParams(ItemInput):
    dry_run: Flag = False


class StatusParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    status: Status
    message: Text = ""
    dry_run: Flag = False


class CommentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    message: CommentText
    dry_run: Flag = False


RetentionDays = Annotated[int, Strict(), Field(ge=1, le=36500), JSON_INTEGER]


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_days: RetentionDays | None = Field(default=None, description="default: policy")
    dry_run: Flag = False


def require_item(ctx: ToolContext, item_id: str) -> dict[str, Any]:
    record = ctx.store.get(item_id)
    if record is None:
        raise NotFound(f"no backlog item {item_id}", id=item_id)
    return record


def with_week(record: dict[str, Any]) -> dict[str, Any]:
    """The record and the ISO week its dedupe key names (null for manual items)."""
    return {**record, "week": week_of_key(record["dedupe_key"])}


def list_items(ctx: ToolContext, p: ItemQuery) -> dict[str, Any]:
    p.position()  # a cursor of another sort is refused before the store is asked
    page = ctx.store.list(p)
    result: dict[str, Any] = {"items": [with_week(r) for r in page.items], "next_cursor": page.next_cursor}
    if p.env is not None:  # an empty page of a misspelt env says so
        result.update(env_status(ctx, p.env, has_items=bool(page.items)))
    return result


def get_item(ctx: ToolContext, p: ItemRef) -> dict[str, Any]:
    """The item, with ``tracker`` (its remote issue and sync state) when tracker sync knows it."""
    record = with_week(require_item(ctx, p.id))
    tracker = item_tracker(ctx.store, ctx.settings, record)
    return record if tracker is None else {**record, "tracker": tracker}


def item_events(ctx: ToolContext, p: ItemRef) -> dict[str, Any]:
    expire_if_due(ctx, p.id)  # the timeline shows an acceptance's end as soon as the item counts again
    return {"item_id": p.id, "events": ctx.store.events(p.id)}


def dashboard(ctx: ToolContext, p: DashboardParams) -> dict[str, Any]:
    state = ctx.store.status()
    numbers = ctx.store.dashboard(p.env)
    alerts = current_alerts(ctx.store, ctx.policy().alerts, env=p.env, dashboard=numbers)
    known = env_status(ctx, p.env, has_items=numbers["total"] > 0) if p.env is not None else {}
    return {**numbers, "alerts": alerts, "backend": state.backend, "degraded": state.degraded, **known}


def upsert(ctx: ToolContext, p: UpsertParams) -> dict[str, Any]:
    item = ItemInput.model_validate(p.model_dump(exclude={"dry_run"}))
    fallback_owner, owner_reason = ctx.owner_for(item.service)
    existing = ctx.store.get_by_dedupe_key(dedupe_key_of(item))
    item = with_owner_reason(item, existing, owner_reason)
    if p.dry_run:
        change = plan_upsert(existing, item, fallback_owner=fallback_owner, now=ctx.clock.now(), actor=ctx.actor,
                             on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "action": change.action, "item": change.item, "event": change.event}
    result = ctx.store.upsert(item, actor=ctx.actor, fallback_owner=fallback_owner, on_behalf_of=ctx.on_behalf_of)
    return {"dry_run": False, **result.to_dict()}


def with_owner_reason(item: ItemInput, existing: dict[str, Any] | None, rule_reason: str) -> ItemInput:
    """``meta.owner_reason`` for an upsert that does not say it: why the item has its owner (precedence:
    an explicit owner, ``ownership.overrides``, the catalog, ``default_owner``), kept as recorded on
    later upserts so resending the same item stays a no-op."""
    if "owner_reason" in item.meta:
        return item
    if item.owner is not None and (existing is None or existing["owner"] != item.owner):
        reason: Any = EXPLICIT_OWNER
    elif existing is not None:
        reason = (existing.get("meta") or {}).get("owner_reason")
    else:
        reason = rule_reason
    if not isinstance(reason, str):
        return item
    return item.model_copy(update={"meta": {**item.meta, "owner_reason": reason}})


def set_status(ctx: ToolContext, p: StatusParams) -> dict[str, Any]:
    if p.dry_run:
        change = plan_status(require_item(ctx, p.id), p.status, now=ctx.clock.now(), actor=ctx.actor,
                             message=p.message, on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "action": change.action, "item": change.item, "event": change.event}
    result = ctx.store.set_status(p.id, p.status, actor=ctx.actor, message=p.message, on_behalf_of=ctx.on_behalf_of)
    return {"dry_run": False, **result.to_dict()}


def add_comment(ctx: ToolContext, p: CommentParams) -> dict[str, Any]:
    if p.dry_run:
        event = plan_comment(require_item(ctx, p.id), p.message, now=ctx.clock.now(), actor=ctx.actor,
                             on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "event": event}
    return {"dry_run": False, "event": ctx.store.add_comment(p.id, p.message, actor=ctx.actor,
                                                            on_behalf_of=ctx.on_behalf_of)}


def cleanup(ctx: ToolContext, p: CleanupParams) -> dict[str, Any]:
    days = p.retention_days if p.retention_days is not None else ctx.policy().defaults.retention_days
    cutoff = cleanup_cutoff(ctx.clock, days)
    state = ctx.store.status()
    base = {"retention_days": days, "cutoff": cutoff, "backend": state.backend, "dry_run": p.dry_run}
    if state.degraded:
        return {**base, "removed": 0, "skipped": True,
                "reason": "store is degraded (running on the JSONL fallback); cleanup waits for Postgres"}
    if p.dry_run:
        return {**base, "removed": 0, "skipped": False, "would_remove": count_expired(ctx, cutoff)}
    expire_acceptances(ctx)
    return {**base, "removed": ctx.store.cleanup(days), "skipped": False}


def count_expired(ctx: ToolContext, cutoff: str) -> int:
    """What cleanup would remove, paging through closed items (dry runs only)."""
    count = 0
    for status in (Status.DONE, Status.CANCELED):
        cursor: str | None = None
        while True:
            page = ctx.store.list(ItemQuery(status=status, limit=500, cursor=cursor))
            count += sum(1 for r in page.items if r["updated_at"] < cutoff)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return count


def register(registry: ToolRegistry) -> None:
    def add(action: str, level: Any, params: type[BaseModel], summary: str, handler: Any, *,
            from_index: bool = False) -> None:
        registry.action(TOOL, action, area=AREA, level=level, params=params, summary=summary,
                        from_index=from_index)(handler)

    # ``events`` is not ``from_index``: a JSONL store loads the events file on its first call.
    add("list", "read", ItemQuery, "List items with filters and cursor pagination", list_items, from_index=True)
    add("get", "read", ItemRef, "One item by id", get_item, from_index=True)
    add("events", "read", ItemRef, "An item's audit trail", item_events)
    add("dashboard", "read", DashboardParams, "Counts, overdue items and top services", dashboard, from_index=True)
    add("upsert", "write", UpsertParams, "Create or update an item by dedupe key", upsert)
    add("set_status", "write", StatusParams, "Move an item to another status", set_status)
    add("add_comment", "write", CommentParams, "Comment on an item", add_comment)
    add("cleanup", "admin", CleanupParams, "Remove done/canceled items past retention", cleanup)
