"""REST routes for people and dashboards (DESIGN §9), each a thin shell over one registry action.

Every route names the ``backlog_tool`` action it runs (the ``…Call`` aliases below); the
action's declared entitlement authorizes it, and the action's own params model validates it
again, so a route can never accept what the tool call would refuse. Request bodies reuse the
tools' params models; the JSON bodies of these routes and of ``/v1/tools/execute`` are the same.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from services.router.access.auth import ActionCall, requires
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.api.query import ItemListQuery, QueryForm
from services.router.domain.enums import Status
from services.router.domain.models import Actor, BacklogEvent, BacklogItem, CommentText, ItemId, Slug, Text
from services.router.domain.strict import Flag
from services.router.tools.backlog_tool import CleanupParams, DashboardParams, UpsertParams

TOOL = "backlog_tool"

# The registry action each route runs: its entitlement is the route's entitlement.
DashboardCall = Annotated[ActionCall, requires(TOOL, "dashboard")]
GenerateWeeklyCall = Annotated[ActionCall, requires(TOOL, "auto_generate_weekly")]
ListCall = Annotated[ActionCall, requires(TOOL, "list")]
GetCall = Annotated[ActionCall, requires(TOOL, "get")]
EventsCall = Annotated[ActionCall, requires(TOOL, "events")]
UpsertCall = Annotated[ActionCall, requires(TOOL, "upsert")]
StatusCall = Annotated[ActionCall, requires(TOOL, "set_status")]
CommentCall = Annotated[ActionCall, requires(TOOL, "add_comment")]
CleanupCall = Annotated[ActionCall, requires(TOOL, "cleanup")]

ItemIdPath = Annotated[ItemId, Path(description="An item id (`bl_…`)")]
AGENT_DESCRIPTION = "Optional. The acting identity comes from the API key; a different value is refused (403)."


# -- request bodies: the tools' params models, plus the optional agent_id --------------------
class AgentField(BaseModel):
    agent_id: Actor | None = Field(default=None, description=AGENT_DESCRIPTION)


class UpsertBody(UpsertParams, AgentField):
    model_config = ConfigDict(extra="forbid")


class StatusBody(AgentField):
    """``set_status``'s params without ``id`` (it is in the path)."""

    model_config = ConfigDict(extra="forbid")
    status: Status
    message: Text = ""
    dry_run: Flag = False


class CommentBody(AgentField):
    """``add_comment``'s params without ``id`` (it is in the path)."""

    model_config = ConfigDict(extra="forbid")
    message: CommentText
    dry_run: Flag = False


class CleanupBody(CleanupParams, AgentField):
    model_config = ConfigDict(extra="forbid")


class GenerateQuery(QueryForm):
    model_config = ConfigDict(extra="forbid")
    env: Slug
    dry_run: Flag = Field(default=False, description="Report the plan; write nothing")


# -- responses (documentation; the handlers return the tools' results as they are) ----------
class ServiceCount(BaseModel):
    service: str
    count: int


class FiringAlert(BaseModel):
    """One policy alert rule that fires for the env (policy ``alerts.rules``)."""

    rule: str
    severity: str
    action: str = Field(description="notify or page")
    target: str = Field(description="who is told, e.g. oncall or CTO")
    env: str | None
    value: int
    message: str
    items: list[str] = Field(description="ids of the overdue items behind it")


class Dashboard(BaseModel):
    env: str | None
    generated_at: str
    total: int
    status_counts: dict[str, int]
    priority_counts: dict[str, int]
    overdue_count: int
    overdue: list[dict[str, Any]]
    top_services: list[ServiceCount]
    alerts: list[FiringAlert]
    backend: str
    degraded: bool
    known_env: bool | None = Field(default=None, description="with `env`: false when no items, signals, digest "
                                   "section or policy entry names the env (a misspelling?)")
    warning: str | None = Field(default=None, description="with `known_env: false`: the envs that are known")


class ItemPage(BaseModel):
    items: list[BacklogItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    known_env: bool | None = Field(default=None, description="with `env`: false when no items, signals, digest "
                                   "section or policy entry names the env (a misspelling?)")
    warning: str | None = Field(default=None, description="with `known_env: false`: the envs that are known")


class EventList(BaseModel):
    item_id: str
    events: list[BacklogEvent]


class WriteResult(BaseModel):
    dry_run: bool
    action: str = Field(description="created, updated or unchanged")
    item: BacklogItem
    event: BacklogEvent | None


class CommentResult(BaseModel):
    dry_run: bool
    event: BacklogEvent


class OpenResult(BaseModel):
    """A result whose fields the action reports (generation and cleanup summaries)."""

    model_config = ConfigDict(extra="allow")


def respond(result: Any) -> Response:
    return OrjsonResponse(result)


def body_params(body: BaseModel) -> dict[str, Any]:
    """What the client sent, without ``agent_id`` (checked separately against the key)."""
    return body.model_dump(exclude={"agent_id"}, exclude_unset=True)




async def dashboard(call: DashboardCall, query: Annotated[DashboardParams, Query()]) -> Response:
    return respond(await call.run_async(query.model_dump(exclude_none=True)))


async def generate_weekly(call: GenerateWeeklyCall, query: Annotated[GenerateQuery, Query()]) -> Response:
    return respond(await call.run_async(query.model_dump()))


async def list_items(call: ListCall, query: Annotated[ItemListQuery, Query()]) -> Response:
    return respond(await call.run_async(query.model_dump(exclude_none=True)))


async def get_item(call: GetCall, item_id: ItemIdPath) -> Response:
    return respond(await call.run_async({"id": item_id}))


async def item_events(call: EventsCall, item_id: ItemIdPath) -> Response:
    return respond(await call.run_async({"id": item_id}))


async def upsert_item(call: UpsertCall, body: UpsertBody) -> Response:
    return respond(await call.run_async(body_params(body), agent_id=body.agent_id))


async def set_status(call: StatusCall, item_id: ItemIdPath, body: StatusBody) -> Response:
    return respond(await call.run_async({**body_params(body), "id": item_id}, agent_id=body.agent_id))


async def add_comment(call: CommentCall, item_id: ItemIdPath, body: CommentBody) -> Response:
    return respond(await call.run_async({**body_params(body), "id": item_id}, agent_id=body.agent_id))


async def cleanup(call: CleanupCall, body: Annotated[CleanupBody | None, Body()] = None) -> Response:
    body = body or CleanupBody()
    return respond(await call.run_async(body_params(body), agent_id=body.agent_id))


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    """The route table: path, method, handler, documented response."""
    def add(path: str, method: str, handler: Any, model: Any, summary: str, *errors: int) -> None:
        app.add_api_route(f"/v1/backlog{path}", handler, methods=[method], response_model=model, summary=summary,
                          tags=["backlog"], responses={**responses, **error_docs(*errors)})

    add("/dashboard", "GET", dashboard, Dashboard, "Counts, overdue items and top services (RUNBOOK §6)")
    add("/generate/weekly", "POST", generate_weekly, OpenResult,
        "Generate this week's items from the latest platform digest (RUNBOOK §3.2)", 404, 409)
    add("/items", "GET", list_items, ItemPage, "List items (filters are ANDed; cursor pagination)")
    add("/items/{item_id}", "GET", get_item, BacklogItem, "One item", 404)
    add("/items/{item_id}/events", "GET", item_events, EventList, "An item's audit trail, oldest first", 404)
    add("/items", "POST", upsert_item, WriteResult, "Create an item, or update the one with the same dedupe key")
    add("/items/{item_id}/status", "POST", set_status, WriteResult, "Move an item to another status", 404, 409)
    add("/items/{item_id}/comments", "POST", add_comment, CommentResult, "Comment on an item", 404)
    add("/cleanup", "POST", cleanup, OpenResult, "Remove done/canceled items past retention (RUNBOOK §4)")
