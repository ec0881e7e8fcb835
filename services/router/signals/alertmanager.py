"""Alertmanager webhook payloads (version 4) as alert signals.

The payload is accepted exactly as Alertmanager sends it (``receiver``, ``status``, ``alerts``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``, ``version``,
``groupKey``, ``truncatedAlerts``). Fields Alertmanager may add later, or that compatible
senders add (Grafana's ``silenceURL``, ``orgId``…), are ignored rather than refused: a webhook
that 422s loses alerts silently on the sender's side. Each alert is converted on its own, so
one alert without a service label is rejected with a reason and the others are accepted.

- ``id`` is the alert's ``fingerprint`` (stable across re-notifications: a resend is a no-op);
- service, env and severity come from labels whose names the risk policy configures;
- ``endsAt`` of ``0001-01-01T00:00:00Z`` (Go's zero time) means still firing; a firing alert's
  ``endsAt`` is only a forecast, so it is kept only once the alert has resolved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from services.router.domain.strict import JSON_INTEGER
from services.router.signals.models import Alert, Rejection, describe_error
from services.router.signals.rejections import Reason, reason_of
from services.router.signals.risk_policy import AlertmanagerLabels

GO_ZERO_YEAR = 1
SEVERITIES = ("critical", "warning", "info")


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AmPayload(BaseModel):
    """The webhook body; ``alerts`` items are validated one by one in ``convert``."""

    model_config = ConfigDict(extra="ignore")

    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: Annotated[int, Strict(), Field(ge=0, le=2**31 - 1), JSON_INTEGER] = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Any] = Field(max_length=5000)


def convert(payload: AmPayload, labels: AlertmanagerLabels) -> tuple[list[Alert], list[Rejection]]:
    """Every alert in the payload, as a signal or as a rejection with a reason."""
    accepted: list[Alert] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(payload.alerts):
        try:
            am = AmAlert.model_validate(raw)
        except ValidationError as exc:
            raw_errors = exc.errors(include_url=False)
            errors = [describe_error(e) for e in raw_errors]
            rejected.append(Rejection(index, "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                                      kind="alert", errors=errors, code=reason_of([e["type"] for e in raw_errors])))
            continue
        result = to_signal(am, payload, labels)
        if isinstance(result, tuple):
            code, reason = result
            rejected.append(Rejection(index, reason, kind="alert", id=am.fingerprint or None, code=code))
        else:
            accepted.append(result)
    return accepted, rejected


def to_signal(am: AmAlert, payload: AmPayload, labels: AlertmanagerLabels) -> Alert | tuple[Reason, str]:
    """One alert as a signal, or the reason it cannot be one (its code and the words)."""
    if not am.fingerprint:
        return "missing_fingerprint", "alert has no fingerprint (Alertmanager 0.19+ sends one); cannot deduplicate it"
    service = first_label(am.labels, labels.service_labels)
    if service is None:
        return "missing_service", f"missing service label (looked for {', '.join(labels.service_labels)})"
    env = first_label(am.labels, labels.env_labels) or labels.default_env
    if env is None:
        return "missing_env", (f"missing env label (looked for {', '.join(labels.env_labels)}; "
                               "no default_env configured)")
    severity = severity_of(am.labels, labels)
    if severity is None:
        got = first_label(am.labels, labels.severity_labels)
        return "unknown_severity", (f"unknown severity {got!r}; expected {', '.join(SEVERITIES)} "
                                    "or an alias in severity_aliases")
    alertname = am.labels.get("alertname") or payload.groupLabels.get("alertname") or "unnamed"
    summary = am.annotations.get("summary") or am.annotations.get("description") or ""
    data: dict[str, Any] = {
        "kind": "alert", "id": am.fingerprint, "env": env.lower(), "service": service.lower(),
        "source": am.generatorURL or payload.externalURL or f"alertmanager:{am.fingerprint}",
        "alertname": alertname, "title": summary[:200], "severity": severity, "status": am.status,
        "starts_at": am.startsAt,
        "ends_at": am.endsAt if am.status == "resolved" and not is_zero_time(am.endsAt) else None,
    }
    try:
        return Alert.model_validate(data)
    except ValidationError as exc:
        return "invalid_value", "; ".join(f"{e['field']}: {e['message']}"
                                          for e in map(describe_error, exc.errors(include_url=False)))


def first_label(values: dict[str, str], names: list[str]) -> str | None:
    for name in names:
        value = values.get(name, "").strip()
        if value:
            return value
    return None


def severity_of(values: dict[str, str], labels: AlertmanagerLabels) -> str | None:
    raw = first_label(values, labels.severity_labels)
    if raw is None:
        return labels.default_severity
    value = raw.lower()
    if value in SEVERITIES:
        return value
    return labels.severity_aliases.get(value)


def is_zero_time(value: datetime | None) -> bool:
    """Go's zero ``time.Time`` (``0001-01-01T00:00:00Z``): Alertmanager's "has not ended"."""
    return value is None or value.year == GO_ZERO_YEAR
