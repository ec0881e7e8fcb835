"""Signal intake over HTTP: ``POST /v1/signals`` and ``POST /v1/signals/alertmanager``.

Both routes are thin shells over ``signals_tool`` actions and are authorized by the action
they run (``requires(...)``: ``tools.signals.write``), like every other route. The app factory
adds them with ``register(app, responses=...)`` — flat ``APIRoute``s on the app, which its
deny-by-default check and OpenAPI documentation walk (FastAPI ≥ 0.165 keeps routers added with
``include_router`` as one nested entry that a walk of ``app.routes`` does not look inside).
They answer 200 with what was accepted and
what was rejected (with reasons) even when some items are bad: one bad item never rejects the
others, and Alertmanager must not retry a payload whose bad alert will never get better.
A body that is not a batch at all (or not a webhook payload) is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from services.router.access.auth import ActionCall, requires
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.api.query import QueryForm
from services.router.domain.models import SchemaOf
from services.router.domain.strict import Flag
from services.router.errors import ValidationFailed
from services.router.signals.alertmanager import AmPayload
from services.router.signals.models import MAX_BATCH

TOOL = "signals_tool"
IngestCall = Annotated[ActionCall, requires(TOOL, "ingest")]
AlertmanagerCall = Annotated[ActionCall, requires(TOOL, "alertmanager")]

EXAMPLE_SIGNAL: dict[str, Any] = {
    "kind": "incident", "id": "INC-123", "env": "prod", "service": "gateway",
    "source": "https://incidents.example.com/INC-123", "title": "5xx spike on checkout",
    "severity": "sev2", "status": "open", "started_at": "2026-11-23T06:00:00Z", "root_cause": "db-pool",
}


class SignalBatch(BaseModel):
    """Items stay untyped here on purpose: each is validated on its own by the action."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"signals": [EXAMPLE_SIGNAL]}]})

    signals: list[Any] = Field(max_length=MAX_BATCH, description="incident, alert, slo_breach, followup, "
                               "deploy or vulnerability objects (discriminated by `kind`)")
    dry_run: Flag = False


class IntakeResult(BaseModel):
    """Documentation of the response (the handlers return the action's result as it is)."""

    dry_run: bool
    backend: str
    accepted: list[dict[str, str]] = Field(description="{kind, id, action: created|updated|unchanged}")
    rejected: list[dict[str, Any]] = Field(description="{index, reason, kind?, id?, errors}")
    counts: dict[str, int]


class AlertmanagerQuery(QueryForm):
    model_config = ConfigDict(extra="forbid")
    dry_run: Flag = Field(default=False, description="Report what would be stored; store nothing")


def post_signals(call: IngestCall, body: Annotated[Any, SchemaOf(SignalBatch | list[Any]), Body()]) -> Response:
    """Send ``{"signals": [...]}`` or a bare JSON array; a resend of the same signal changes nothing."""
    # Validated by the action itself (``signals_tool.ingest``'s params are this batch's fields), so a
    # 422 names the field as sent, not a branch of the union the document describes.
    if isinstance(body, list):
        return OrjsonResponse(call.run({"signals": body}))
    if not isinstance(body, dict):
        raise ValidationFailed('body: expected {"signals": [...], "dry_run"?} or a JSON array of signals',
                               field="body")
    return OrjsonResponse(call.run(body))


def post_alertmanager(
    call: AlertmanagerCall, payload: Annotated[dict[str, Any], SchemaOf(AmPayload), Body()],
    query: Annotated[AlertmanagerQuery, Query()],
) -> Response:
    """Point an Alertmanager ``webhook_configs`` receiver here with the ``alertmanager`` account's key
    (``http_config.authorization.credentials``). Alerts are keyed by fingerprint."""
    return OrjsonResponse(call.run({"payload": payload, "dry_run": query.dry_run}))


ROUTES: list[tuple[str, Any, str]] = [
    ("/v1/signals", post_signals, "Upsert a batch of signals by (kind, id)"),
    ("/v1/signals/alertmanager", post_alertmanager,
     "Alertmanager webhook receiver (payload version 4, as Alertmanager sends it)"),
]


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    """Add the routes to the app itself (what ``app/factory.py`` calls beside the other route modules)."""
    for path, endpoint, summary in ROUTES:
        app.add_api_route(path, endpoint, methods=["POST"], response_model=IntakeResult, summary=summary,
                          tags=["signals"], responses={**responses, **error_docs(413)})

