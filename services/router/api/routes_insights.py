"""REST routes for trends, problems and the owner / due-date edits (``tools/backlog_insights``).

Thin shells over one registry action each, like ``routes_backlog``: the action's entitlement
authorizes the route and its params model validates the request again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from services.router.access.auth import ActionCall, requires
from services.router.api.errors import error_docs
from services.router.api.query import QueryForm
from services.router.api.routes_backlog import TOOL, AgentField, ItemIdPath, WriteResult, body_params, respond
from services.router.domain.models import Slug, Text
from services.router.domain.strict import Flag, IsoDate
from services.router.tools.backlog_insights import ProblemsParams, TrendsParams

TrendsCall = Annotated[ActionCall, requires(TOOL, "trends")]
ProblemsCall = Annotated[ActionCall, requires(TOOL, "problems")]
OwnerCall = Annotated[ActionCall, requires(TOOL, "set_owner")]
DueDateCall = Annotated[ActionCall, requires(TOOL, "set_due_date")]


class OwnerBody(AgentField):
    """``set_owner``'s params without ``id`` (it is in the path)."""

    model_config = ConfigDict(extra="forbid")
    owner: Slug
    message: Text = ""
    dry_run: Flag = False


class DueDateBody(AgentField):
    """``set_due_date``'s params without ``id`` (it is in the path)."""

    model_config = ConfigDict(extra="forbid")
    due_date: IsoDate | None = Field(description="YYYY-MM-DD, or null for no due date")
    message: Text = ""
    dry_run: Flag = False


class TrendsQuery(QueryForm, TrendsParams):
    """``trends``'s params as a query string (``weeks`` digits only)."""


class ProblemsQuery(QueryForm, ProblemsParams):
    """``problems``'s params as a query string."""


# -- responses (documentation) ------------------------------------------------------------------
class TrendWeek(BaseModel):
    week: str = Field(description="ISO week, e.g. 2026-W48")
    opened: int = Field(description="items created in the week")
    closed: int = Field(description="status changes into done or canceled in the week")
    open_at_end: int = Field(description="active items at the week's end (Sunday 23:59:59 UTC)")
    overdue_at_end: int = Field(description="of those, due before that Sunday")
    p0_open_at_end: int = Field(description="of those, P0")


class Trends(BaseModel):
    env: str | None
    service: str | None
    weeks: list[TrendWeek] = Field(description="oldest first, ending with the current ISO week")
    known_env: bool | None = None
    warning: str | None = None


class Problem(BaseModel):
    service: str
    category: str
    items: list[str] = Field(description="the active items' ids, newest first")
    weeks_open: int = Field(description="ISO weeks from first_week through this one")
    first_week: str = Field(description="the week of the oldest active item")
    oldest_due_date: str | None
    priority: str = Field(description="the highest of the items'")
    owner: str = Field(description="the newest item's owner")
    overdue: bool = Field(description="any of the items is overdue")


class Problems(BaseModel):
    env: str
    service: str | None
    total: int = Field(description="problems in the env (the list stops at `limit`)")
    problems: list[Problem] = Field(description="by priority, then weeks open (most first)")
    known_env: bool | None = None
    warning: str | None = None


async def trends(call: TrendsCall, query: Annotated[TrendsQuery, Query()]) -> Response:
    return respond(await call.run_async(query.model_dump(exclude_none=True)))


async def problems(call: ProblemsCall, query: Annotated[ProblemsQuery, Query()]) -> Response:
    return respond(await call.run_async(query.model_dump(exclude_none=True)))


async def set_owner(call: OwnerCall, item_id: ItemIdPath, body: OwnerBody) -> Response:
    return respond(await call.run_async({**body_params(body), "id": item_id}, agent_id=body.agent_id))


async def set_due_date(call: DueDateCall, item_id: ItemIdPath, body: DueDateBody) -> Response:
    params = {**body_params(body), "id": item_id, "due_date": body.due_date}
    return respond(await call.run_async(params, agent_id=body.agent_id))


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    def add(path: str, method: str, handler: Any, model: Any, summary: str, *errors: int) -> None:
        app.add_api_route(f"/v1/backlog{path}", handler, methods=[method], response_model=model, summary=summary,
                          tags=["backlog"], responses={**responses, **error_docs(*errors)})

    add("/trends", "GET", trends, Trends, "Opened, closed, open, overdue and P0 per ISO week, oldest first")
    add("/problems", "GET", problems, Problems, "One row per problem (service, category) with active items")
    add("/items/{item_id}/owner", "POST", set_owner, WriteResult, "Give an item another owner", 404, 409)
    add("/items/{item_id}/due-date", "POST", set_due_date, WriteResult, "Move or clear an item's due date", 404, 409)
