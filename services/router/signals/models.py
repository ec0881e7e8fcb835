"""Signal models, one per kind, behind a discriminated union on ``kind`` (DESIGN §7, issue 6).

Signals are upserted by (``kind``, ``id``), so every model is frozen and compares by value: a
resend that changes nothing is detected by equality and writes nothing. Timestamps must carry
an offset and are normalized to UTC, so ordering and windows never depend on the sender's zone.

Each kind knows the instant it describes (``occurred_at``), which the stores index for time windows,
and what was true about it at a given moment (``open_at`` and friends in ``scoring``), which
lets snapshots be backfilled for past hours from today's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from services.router.domain.models import Slug, plain_text
from services.router.domain.strict import IsoDate, Moment, Number
from services.router.signals.rejections import Reason, reason_of

KINDS: tuple[str, ...] = ("incident", "alert", "slo_breach", "followup", "deploy", "vulnerability")
Kind = Literal["incident", "alert", "slo_breach", "followup", "deploy", "vulnerability"]

MAX_BATCH = 5000


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[Moment, AfterValidator(_to_utc)]
# Ids come from other systems (fingerprints, INC-123, CVE-2026-1234, scanner ids): any
# printable text without whitespace, short enough to index.
SignalId = Annotated[str, StringConstraints(pattern=r"^\S+$", min_length=1, max_length=200)]
SourceRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
# Titles reach digests and generated items: no bidirectional controls there either.
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                  AfterValidator(plain_text)]
OptionalTitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(plain_text)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CveId = Annotated[str, StringConstraints(pattern=r"^CVE-\d{4}-\d{4,}$")]


class SignalBase(BaseModel):
    """What every kind carries: who it is about and where a person can read more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SignalId
    env: Slug
    service: Slug
    source: SourceRef = Field(description="A URL or reference (ticket, dashboard) a person can follow")

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind_name, self.id)

    @property
    def kind_name(self) -> str:
        return str(getattr(self, "kind"))  # noqa: B009 - every subclass declares ``kind``

    @property
    def occurred_at(self) -> datetime:  # pragma: no cover - every kind overrides it
        """The instant the signal describes: what time windows and store queries use."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short human title for evidence lists."""
        return str(getattr(self, "title", "") or self.id)

    def record(self) -> dict[str, Any]:
        """The JSON form written to files and databases (timestamps as ``…Z``)."""
        return self.model_dump(mode="json")


class Incident(SignalBase):
    kind: Literal["incident"] = "incident"
    title: Title
    severity: Literal["sev1", "sev2", "sev3", "sev4"]
    status: Literal["open", "mitigated", "resolved"]
    started_at: UtcDatetime
    resolved_at: UtcDatetime | None = None
    root_cause: Slug | None = Field(default=None, description="Root-cause tag; shared tags count as recurrence")
    alertname: Name | None = Field(default=None, description="The alert that opened it; shared names recur")

    @model_validator(mode="after")
    def _resolution(self) -> Incident:
        if self.status == "resolved" and self.resolved_at is None:
            raise ValueError("resolved_at is required when status is resolved")
        if self.status != "resolved" and self.resolved_at is not None:
            raise ValueError("resolved_at is only allowed when status is resolved")
        if self.resolved_at is not None and self.resolved_at < self.started_at:
            raise ValueError("resolved_at is before started_at")
        return self

    @property
    def occurred_at(self) -> datetime:
        return self.started_at


class Alert(SignalBase):
    kind: Literal["alert"] = "alert"
    alertname: Name
    title: OptionalTitle = ""
    severity: Literal["critical", "warning", "info"]
    status: Literal["firing", "resolved"]
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _ending(self) -> Alert:
        if self.status == "resolved" and self.ends_at is None:
            raise ValueError("ends_at is required when status is resolved")
        if self.status == "firing" and self.ends_at is not None:
            raise ValueError("ends_at is only allowed when status is resolved (a firing alert has not ended)")
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    @property
    def occurred_at(self) -> datetime:
        return self.starts_at

    @property
    def label(self) -> str:
        return self.title or self.alertname


class SloBreach(SignalBase):
    kind: Literal["slo_breach"] = "slo_breach"
    slo: Name
    title: OptionalTitle = ""
    burn_rate: Number = Field(gt=0, le=10_000, allow_inf_nan=False,
                              description="Error-budget burn rate (1 = on budget)")
    at: UtcDatetime

    @property
    def occurred_at(self) -> datetime:
        return self.at

    @property
    def label(self) -> str:
        return self.title or f"SLO {self.slo} breached (burn rate {self.burn_rate:g})"


class Followup(SignalBase):
    kind: Literal["followup"] = "followup"
    title: Title
    due_date: IsoDate
    status: Literal["open", "done"]
    incident_ref: SignalId | None = None
    created_at: UtcDatetime | None = None
    done_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _completion(self) -> Followup:
        if self.done_at is not None and self.status != "done":
            raise ValueError("done_at is only allowed when status is done")
        if self.done_at is not None and self.created_at is not None and self.done_at < self.created_at:
            raise ValueError("done_at is before created_at")
        return self

    @property
    def occurred_at(self) -> datetime:
        return self.created_at or datetime.combine(self.due_date, time(), tzinfo=UTC)


class Deploy(SignalBase):
    kind: Literal["deploy"] = "deploy"
    result: Literal["success", "failed", "rolled_back"]
    title: OptionalTitle = ""
    version: Annotated[str, StringConstraints(max_length=100)] = ""
    at: UtcDatetime

    @property
    def occurred_at(self) -> datetime:
        return self.at

    @property
    def label(self) -> str:
        return self.title or f"deploy {self.version or self.id} {self.result.replace('_', ' ')}"


class Vulnerability(SignalBase):
    kind: Literal["vulnerability"] = "vulnerability"
    title: OptionalTitle = ""
    cve: CveId | None = None
    package: Annotated[str, StringConstraints(max_length=200)] = ""
    severity: Literal["critical", "high", "medium", "low"]
    status: Literal["open", "fixed"]
    detected_at: UtcDatetime
    fixed_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _fix(self) -> Vulnerability:
        if self.fixed_at is not None and self.status != "fixed":
            raise ValueError("fixed_at is only allowed when status is fixed")
        if self.fixed_at is not None and self.fixed_at < self.detected_at:
            raise ValueError("fixed_at is before detected_at")
        return self

    @property
    def occurred_at(self) -> datetime:
        return self.detected_at

    @property
    def label(self) -> str:
        return self.title or " ".join(p for p in (self.cve or self.id, self.package) if p)


AnySignal = Incident | Alert | SloBreach | Followup | Deploy | Vulnerability
Signal = Annotated[AnySignal, Field(discriminator="kind")]
SIGNAL_ADAPTER: TypeAdapter[AnySignal] = TypeAdapter(Signal)


def parse_signal(data: Any) -> AnySignal:
    """Validate one signal (raises ``pydantic.ValidationError``)."""
    return SIGNAL_ADAPTER.validate_python(data)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one item of a batch was refused; the others are unaffected."""

    index: int
    reason: str
    kind: str | None = None
    id: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    code: Reason = "invalid_value"
    """One of a fixed set (``signals.rejections``): what logs and ``/metrics`` count, never free text."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "code": self.code, "reason": self.reason}
        if self.kind is not None:
            out["kind"] = self.kind
        if self.id is not None:
            out["id"] = self.id
        if self.errors:
            out["errors"] = self.errors
        return out


def validate_batch(items: Sequence[Any]) -> tuple[list[AnySignal], list[Rejection]]:
    """Validate each item on its own: one bad item never rejects the others."""
    accepted: list[AnySignal] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            accepted.append(parse_signal(item))
        except ValidationError as exc:
            rejected.append(rejection(index, item, exc))
    return accepted, rejected


def rejection(index: int, item: Any, exc: ValidationError) -> Rejection:
    raw = exc.errors(include_url=False)
    errors = [describe_error(err) for err in raw]
    kind = item.get("kind") if isinstance(item, dict) else None
    ident = item.get("id") if isinstance(item, dict) else None
    return Rejection(
        index=index, reason="; ".join(f"{e['field']}: {e['message']}" for e in errors),
        kind=kind if isinstance(kind, str) else None, id=ident if isinstance(ident, str) else None,
        errors=errors, code=reason_of([str(e["type"]) for e in raw]),
    )


def describe_error(err: Any) -> dict[str, str]:
    """One pydantic error as ``{field, message}``; the union's tag is not part of the field name."""
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] in KINDS:
        loc = loc[1:]
    field_name = ".".join(loc) or "(item)"
    kind_error = err["type"] in ("union_tag_invalid", "union_tag_not_found")
    if kind_error:
        field_name = "kind"
        message = f"must be one of {', '.join(KINDS)}"
    elif err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    if not kind_error and err["type"] not in ("missing", "extra_forbidden") and "input" in err:
        got = err["input"]
        if not isinstance(got, dict | list):
            message += f" (got {got!r})"[:240]
    return {"field": field_name, "message": message}
