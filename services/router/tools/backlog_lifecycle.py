"""``backlog_tool.accept`` / ``unaccept`` (admin) and the lazy expiry of accepted risks.

Accepting a risk is an admin decision (``tools.backlog.admin``): ``until`` must be after today
and at most ``lifecycle.max_accept_days`` ahead, and the reason is required. The item keeps its
status; while accepted it counts in no overdue figure, alert, reminder or escalation, and
generation creates no new week's item for its lineage (``generation.lifecycle``).

Expiry needs no timer: from the day after ``until`` every figure counts the item again (the
overdue rule compares dates, ``domain.acceptance``). The ``acceptance_expired`` event — and,
with ``lifecycle.restart_due_on_expiry``, the restarted due date, decided when the risk was
accepted — is written by ``expire_acceptances``, which the jobs run first (alerts every 15
minutes, generation, cleanup), and for one item when its timeline is read or it is accepted
again. Each write is a revision planned under the item's lock, so two jobs write one event.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from services.router.domain import acceptance
from services.router.domain.models import CommentText, ItemId
from services.router.domain.revisions import Revision, plan_revision
from services.router.domain.strict import Flag, IsoDate
from services.router.tools.acceptance_expiry import expire_one
from services.router.tools.backlog_tool import require_item
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry

TOOL = "backlog_tool"
AREA = "backlog"


class AcceptParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    until: IsoDate
    reason: CommentText
    dry_run: Flag = False


class UnacceptParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ItemId
    dry_run: Flag = False


def accept(ctx: ToolContext, p: AcceptParams) -> dict[str, Any]:
    policy = ctx.policy()
    now = ctx.clock.now()
    record = require_item(ctx, p.id)
    acceptance.check_until(p.until, today=now.date(), max_days=policy.lifecycle.max_accept_days)
    acceptance.check_acceptable(record)
    category = policy.categories.get(record["category"])
    restart = acceptance.restarted_due(p.until, category.due_days) \
        if policy.lifecycle.restart_due_on_expiry and category is not None else None
    value = acceptance.acceptance(until=p.until, reason=p.reason, by=ctx.actor, now=now,
                                  on_behalf_of=ctx.on_behalf_of, due_on_expiry=restart)
    return _revise(ctx, record, Revision(kind="accept", accepted=value), p.dry_run)


def unaccept(ctx: ToolContext, p: UnacceptParams) -> dict[str, Any]:
    record = require_item(ctx, p.id)
    return _revise(ctx, record, Revision(kind="unaccept"), p.dry_run)


def _revise(ctx: ToolContext, record: dict[str, Any], revision: Revision, dry_run: bool) -> dict[str, Any]:
    today = ctx.clock.now().date()
    if dry_run:
        change = plan_revision(record, revision, now=ctx.clock.now(), actor=ctx.actor, on_behalf_of=ctx.on_behalf_of)
        return {"dry_run": True, "action": change.action, "item": change.item, "event": change.event}
    if acceptance.is_expired(record, today):  # the old acceptance's end is recorded before anything replaces it
        expire_one(ctx.store, record["id"], today)  # (an unaccept then finds nothing left to withdraw)
    result = ctx.store.revise(record["id"], revision, actor=ctx.actor, on_behalf_of=ctx.on_behalf_of)
    return {"dry_run": False, **result.to_dict()}


def register(registry: ToolRegistry) -> None:
    registry.action(TOOL, "accept", area=AREA, level="admin", params=AcceptParams,
                    summary="Accept an item's risk until a date (it counts in no overdue figure meanwhile)")(accept)
    registry.action(TOOL, "unaccept", area=AREA, level="admin", params=UnacceptParams,
                    summary="Withdraw an item's risk acceptance")(unaccept)
