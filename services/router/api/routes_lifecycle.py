"""REST routes of the item lifecycle (issue 19): accept a risk until a date, withdraw it.

Thin shells over ``backlog_tool.accept`` / ``unaccept`` (``tools.backlog.admin``), like the
routes of ``routes_backlog``: the action's params model validates the body again, and the JSON
body is the same as ``/v1/tools/execute``'s params without ``id`` (it is in the path).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI
from pydantic import ConfigDict
from starlette.responses import Response

from services.router.access.auth import ActionCall, requires
from services.router.api.errors import error_docs
from services.router.api.routes_backlog import AgentField, ItemIdPath, WriteResult, body_params, respond
from services.router.domain.models import CommentText
from services.router.domain.strict import Flag, IsoDate

TOOL = "backlog_tool"
AcceptCall = Annotated[ActionCall, requires(TOOL, "accept")]
UnacceptCall = Annotated[ActionCall, requires(TOOL, "unaccept")]


class AcceptBody(AgentField):
    """``accept``'s params without ``id``: accepted through ``until`` (inclusive), for ``reason``."""

    model_config = ConfigDict(extra="forbid")
    until: IsoDate
    reason: CommentText
    dry_run: Flag = False


class UnacceptBody(AgentField):
    model_config = ConfigDict(extra="forbid")
    dry_run: Flag = False


async def accept(call: AcceptCall, item_id: ItemIdPath, body: AcceptBody) -> Response:
    return respond(await call.run_async({**body_params(body), "id": item_id}, agent_id=body.agent_id))


async def unaccept(call: UnacceptCall, item_id: ItemIdPath,
                   body: Annotated[UnacceptBody | None, Body()] = None) -> Response:
    body = body or UnacceptBody()
    return respond(await call.run_async({**body_params(body), "id": item_id}, agent_id=body.agent_id))


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    def add(path: str, handler: Any, summary: str, *errors: int) -> None:
        app.add_api_route(f"/v1/backlog/items/{{item_id}}{path}", handler, methods=["POST"], response_model=WriteResult,
                          summary=summary, tags=["backlog"], responses={**responses, **error_docs(*errors)})

    add("/accept", accept, "Accept the item's risk until a date (it counts in no overdue figure meanwhile)",
        404, 409)
    add("/unaccept", unaccept, "Withdraw the item's risk acceptance", 404)
