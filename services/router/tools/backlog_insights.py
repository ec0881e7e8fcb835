"""``backlog_tool`` actions for the questions after "what is overdue now": is it getting better
(``trends``), which problems (``problems``), and the edits a writer makes on the way
(``set_owner``, ``set_due_date``).

Reads need ``tools.backlog.read``, the edits ``tools.backlog.write`` (one event each, a dry run
returns the plan). The numbers come from the store (``domain.trends``, ``domain.problems``), so
every backend answers the same.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from services.router.domain.edits import plan_due_date, plan_owner
from services.router.domain.models import ItemId, Slug, Text
from services.router.domain.problems import DEFAULT_PROBLEMS, MAX_PROBLEMS
from services.router.domain.strict import JSON_INTEGER, Flag, IsoDate
from services.router.domain.trends import DEFAULT_WEEKS, MAX_WEEKS
from services.router.tools.backlog_tool import AREA, TOOL, require_item
from services.router.tools.context import ToolContext
from services.router.tools.known_envs import env_status
from services.router.tools.registry import ToolRegistry


class TrendsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = Field(default=None, description="default: every env")
    service: Slug | None = None
    weeks: Annotated[int, Strict(), Field(ge=1, le=MAX_WEEKS), JSON_INTEGER] = Field(
        default=DEFAULT_WEEKS, description="ISO weeks, ending with this one")


class ProblemsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug
    service: Slug | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_PROBLEMS), JSON_INTEGER] = DEFAULT_PROBLEMS


class OwnerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    owner: Slug
    message: Text = ""
    dry_run: Flag = False


class DueDateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    due_date: IsoDate | None = Field(description="YYYY-MM-DD, or null for no due date")
    message: Text = ""
    dry_run: Flag = False


def trends(ctx: ToolContext, p: TrendsParams) -> dict[str, Any]:
    rows = ctx.store.trends(p.env, p.service, p.weeks)
    result: dict[str, Any] = {"env": p.env, "service": p.service, "weeks": rows}
    if p.env is not None:
        result.update(env_status(ctx, p.env, has_items=any(r["opened"] or r["open_at_end"] for r in rows)))
    return result


def problems(ctx: ToolContext, p: ProblemsParams) -> dict[str, Any]:
    rows = ctx.store.problems(p.env, p.service)
    return {"env": p.env, "service": p.service, "total": len(rows), "problems": rows[: p.limit],
            **env_status(ctx, p.env, has_items=bool(rows))}


def set_owner(ctx: ToolContext, p: OwnerParams) -> dict[str, Any]:
    if p.dry_run:
        change = plan_owner(require_item(ctx, p.id), p.owner, now=ctx.clock.now(), actor=ctx.actor, message=p.message,
                            on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "action": change.action, "item": change.item, "event": change.event}
    result = ctx.store.set_owner(p.id, p.owner, actor=ctx.actor, message=p.message, on_behalf_of=ctx.on_behalf_of)
    return {"dry_run": False, **result.to_dict()}


def set_due_date(ctx: ToolContext, p: DueDateParams) -> dict[str, Any]:
    if p.dry_run:
        change = plan_due_date(require_item(ctx, p.id), p.due_date, now=ctx.clock.now(), actor=ctx.actor,
                               message=p.message, on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "action": change.action, "item": change.item, "event": change.event}
    result = ctx.store.set_due_date(p.id, p.due_date, actor=ctx.actor, message=p.message,
                                    on_behalf_of=ctx.on_behalf_of)
    return {"dry_run": False, **result.to_dict()}


def register(registry: ToolRegistry) -> None:
    def add(action: str, level: Any, params: type[BaseModel], summary: str, handler: Any) -> None:
        registry.action(TOOL, action, area=AREA, level=level, params=params, summary=summary)(handler)

    add("trends", "read", TrendsParams, "Opened, closed, open, overdue and P0 at each ISO week's end", trends)
    add("problems", "read", ProblemsParams, "One row per problem (env, service, category) with active items",
        problems)
    add("set_owner", "write", OwnerParams, "Give an item another owner", set_owner)
    add("set_due_date", "write", DueDateParams, "Move (or clear) an item's due date", set_due_date)
