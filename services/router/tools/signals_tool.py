"""``signals_tool``: take platform signals in (area ``signals``).

``ingest`` and ``alertmanager`` need ``tools.signals.write`` (the ``alertmanager`` account holds
exactly that); ``list`` needs ``tools.signals.read``. Items of a batch are validated one by one:
the result lists what was accepted (created / updated / unchanged) and what was rejected with a
reason, and one bad item never rejects the others. Upserts by (kind, id) make resends harmless.
The HTTP routes ``POST /v1/signals`` and ``/v1/signals/alertmanager`` and the CLI's
``backlog signals import`` run these actions, so all three accept and refuse the same things.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from services.router.clock import iso_z
from services.router.domain.models import SchemaOf, Slug
from services.router.domain.strict import JSON_INTEGER, Flag, Moment
from services.router.errors import ValidationFailed
from services.router.signals.alertmanager import AmPayload, convert
from services.router.signals.models import MAX_BATCH, AnySignal, Rejection, validate_batch
from services.router.signals.rejections import record_rejections
from services.router.signals.store import UpsertOutcome
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry, validation_error
from services.router.tools.signal_access import risk_policy_for, signal_store_for

TOOL = "signals_tool"
AREA = "signals"
MAX_LIST = 1000


class IngestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signals: list[Any] = Field(max_length=MAX_BATCH, description="signal objects; each is validated on its own")
    dry_run: Flag = False


class AlertmanagerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payload: Annotated[dict[str, Any], SchemaOf(AmPayload)] = Field(
        description="the webhook body exactly as Alertmanager sends it (version 4)")
    dry_run: Flag = False


SignalStatus = Literal["open", "mitigated", "resolved", "firing", "done", "fixed"]


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = None
    service: Slug | None = None
    kind: Literal["incident", "alert", "slo_breach", "followup", "deploy", "vulnerability"] | None = None
    status: SignalStatus | None = Field(default=None, description="only signals with this status (incidents, "
                                        "alerts, follow-ups and vulnerabilities have one)")
    since: Moment | None = None
    until: Moment | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_LIST), JSON_INTEGER] = 100


def result(
    ctx: ToolContext, action: str, accepted: list[AnySignal], rejected: list[Rejection], dry_run: bool, **extra: Any
) -> dict[str, Any]:
    store = signal_store_for(ctx)
    outcome = store.upsert_many(accepted, dry_run=dry_run) if accepted else UpsertOutcome()
    if not dry_run:  # a preview drops nothing
        record_rejections(ctx.rejections, action=action, rejected=[(r.kind, r.code) for r in rejected],
                          total=len(accepted) + len(rejected))
    return {
        "dry_run": dry_run, "backend": store.backend, **extra,
        "accepted": [{"kind": k, "id": i, "action": a} for k, i, a in outcome.actions],
        "rejected": [r.to_dict() for r in rejected],
        "counts": {"accepted": len(accepted), "rejected": len(rejected), **outcome.to_dict()},
    }


def ingest(ctx: ToolContext, p: IngestParams) -> dict[str, Any]:
    accepted, rejected = validate_batch(p.signals)
    return result(ctx, "ingest", accepted, rejected, p.dry_run)


def alertmanager(ctx: ToolContext, p: AlertmanagerParams) -> dict[str, Any]:
    try:
        payload = AmPayload.model_validate(p.payload)
    except ValidationError as exc:
        error = validation_error(exc)
        if not p.dry_run:  # a 422 Alertmanager will not retry: its alerts are counted as rejected too
            alerts = p.payload.get("alerts")
            count = len(alerts) if isinstance(alerts, list) and alerts else 1
            record_rejections(ctx.rejections, action="alertmanager", rejected=[("alert", "invalid_payload")] * count,
                              total=count)
        raise ValidationFailed(f"not an Alertmanager webhook payload: {error.message}",
                               field=f"payload.{error.field}" if error.field else "payload") from None
    accepted, rejected = convert(payload, risk_policy_for(ctx).alertmanager)
    return result(ctx, "alertmanager", list(accepted), rejected, p.dry_run, group_key=payload.groupKey,
                  truncated_alerts=payload.truncatedAlerts)


def list_signals(ctx: ToolContext, p: ListParams) -> dict[str, Any]:
    store = signal_store_for(ctx)
    found = store.query(env=p.env, service=p.service, kinds=[p.kind] if p.kind else None, since=p.since,
                        until=p.until)
    if p.status is not None:
        found = [s for s in found if getattr(s, "status", None) == p.status]
    newest = found[::-1][: p.limit]
    return {"count": len(found), "signals": [s.record() for s in newest],
            "until": iso_z(p.until) if p.until else None}


def register(registry: ToolRegistry) -> None:
    registry.action(TOOL, "ingest", area=AREA, level="write", params=IngestParams,
                    summary="Upsert a batch of signals by (kind, id); each item accepted or rejected alone")(ingest)
    registry.action(TOOL, "alertmanager", area=AREA, level="write", params=AlertmanagerParams,
                    summary="Upsert the alerts of an Alertmanager webhook payload (version 4)")(alertmanager)
    registry.action(TOOL, "list", area=AREA, level="read", params=ListParams,
                    summary="Signals by env, service, kind and time window, newest first")(list_signals)
