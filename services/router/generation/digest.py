"""The two digests generation reads, as validated models (DESIGN §6), and how to find the latest.

These models are the contract between the digest producers (``architecture_pressure_tool``,
``risk_history_tool``) and backlog generation. A producer builds its JSON so that it validates
here; generation reads nothing a model here does not describe.

* ``ops/reports/platform/YYYY-Www.json`` — ``platform_priority_digest/v1``: per env, each
  service's pressure score (0-100), band, the DESIGN §6 signals, and evidence refs.
* ``ops/reports/risk/YYYY-MM-DD.json`` — ``risk_digest/v1``: per env, each service's risk score
  (0-100), band, the score's parts and its change over 24 h and 7 d (null when unknown)::

      {"schema": "risk_digest/v1", "date": "2026-11-26", "generated_at": "2026-11-26T09:00:00Z",
       "envs": {"prod": {"services": [
         {"service": "gateway", "score": 82.0, "band": "critical",
          "parts": {"open_incidents": 40.0, "firing_alerts": 20.0},
          "delta_24h": 10.0, "delta_7d": null, "why": ["open_incidents 40: 2 open sev2"]}]}}}

Keys the models do not name are ignored, so a producer may add fields (``parts`` in the
platform digest, ``counts`` per env, …) without breaking generation; a missing or mistyped
field the models do name is one ``ValidationFailed`` naming the file and the field, raised
before anything is written. Numbers are strict: ``"78.5"`` is not a number.

Finding the latest digest (by file name, not after the clock) is ``digest_lookup``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.router.domain.models import Slug
from services.router.domain.weeks import WEEK_LABEL_RE, parse_week
from services.router.errors import ValidationFailed

PLATFORM_SCHEMA = "platform_priority_digest/v1"
RISK_SCHEMA = "risk_digest/v1"
PLATFORM_DIR = "platform"
RISK_DIR = "risk"
NO_PLATFORM_DIGEST = "No platform digest found. Run architecture_pressure_tool.digest first."
NO_RISK_DIGEST = "No risk digest found. Run risk_history_tool.digest first."
DATE_NAME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
MAX_DIGEST_BYTES = 32 * 1024 * 1024

Band = Literal["low", "medium", "high", "critical"]
# No NaN or infinity (JSON has neither; pydantic's own JSON reader would accept them).
Score = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0)]
# ``cache_strings="keys"``: pydantic's JSON reader interns only keys, not values. A digest's values
# are mostly distinct (refs, titles, service names): interning them all overflows the reader's
# cache past ~2k services, and a 5k-service digest then reads a third slower (40 ms vs 30 ms).
Lenient = ConfigDict(extra="ignore", frozen=True, cache_strings="keys")


class Evidence(BaseModel):
    """Something a person can open to see why a service ranks where it does."""

    model_config = Lenient

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    ref: Annotated[str, Field(min_length=1, max_length=500)]
    title: Annotated[str, Field(max_length=500)] = ""
    source: Annotated[str, Field(max_length=2000)] | None = None


class PlatformSignals(BaseModel):
    """The DESIGN §6 signals of one service over the digest's window (all required in v1)."""

    model_config = Lenient

    risk_avg_7d: Score
    risk_max_7d: Score
    risk_delta_7d: Number
    incidents_30d: Count
    recurring_incidents_30d: Count
    slo_breaches_7d: Count
    overdue_followups: Count
    open_critical_vulns: Count
    failed_deploys_7d: Count


class PlatformService(BaseModel):
    model_config = Lenient

    service: Slug
    pressure_score: Score
    band: Band
    signals: PlatformSignals
    evidence: list[Evidence] = Field(default_factory=list, max_length=200)


class Period(BaseModel):
    model_config = Lenient

    start: AwareDatetime
    end: AwareDatetime


def _unique_services(services: list[Any]) -> None:
    seen: set[str] = set()
    for s in services:
        if s.service in seen:
            raise ValueError(f"service {s.service!r} appears twice")
        seen.add(s.service)


class PlatformEnv(BaseModel):
    model_config = Lenient

    services: list[PlatformService]

    @model_validator(mode="after")
    def _unique(self) -> PlatformEnv:
        _unique_services(self.services)
        return self


class PlatformDigest(BaseModel):
    """``ops/reports/platform/YYYY-Www.json``; ``sample`` marks demo data (``make run``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, cache_strings="keys")

    schema_: Literal["platform_priority_digest/v1"] = Field(alias="schema")
    week: str
    generated_at: AwareDatetime
    period: Period | None = None
    envs: dict[Slug, PlatformEnv]
    sample: bool = False

    @field_validator("week")
    @classmethod
    def _week(cls, value: str) -> str:
        parse_week(value)
        return value


class RiskService(BaseModel):
    model_config = Lenient

    service: Slug
    score: Score
    band: Band
    parts: dict[str, Number]
    delta_24h: Number | None
    delta_7d: Number | None
    why: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=50)


class RiskEnv(BaseModel):
    model_config = Lenient

    services: list[RiskService]

    @model_validator(mode="after")
    def _unique(self) -> RiskEnv:
        _unique_services(self.services)
        return self


class RiskDigest(BaseModel):
    """``ops/reports/risk/YYYY-MM-DD.json``."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, cache_strings="keys")

    schema_: Literal["risk_digest/v1"] = Field(alias="schema")
    date: date
    generated_at: AwareDatetime
    envs: dict[Slug, RiskEnv]
    sample: bool = False


D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Found(Generic[D]):
    """A digest with where it came from: ``name`` is shown to people (``platform/2026-W48.json``)."""

    path: Path
    name: str
    label: str
    digest: D


# -- loading ----------------------------------------------------------------------------------
def field_path(loc: tuple[int | str, ...]) -> str:
    """``envs.prod.services[0].pressure_score``: the way a person would point at the field."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_json(path: Path, name: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{name}: cannot read digest: {exc.strerror or exc}", file=name) from None
    if len(data) > MAX_DIGEST_BYTES:
        raise ValidationFailed(f"{name}: digest is larger than {MAX_DIGEST_BYTES} bytes", file=name)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{name}: not valid JSON: {exc}", file=name) from None


def validate_digest(model: type[D], data: Any, name: str) -> D:
    """Validate, or raise one ``ValidationFailed`` naming the file and the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0]
        where = field_path(tuple(first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        raise ValidationFailed(
            f"{name}: {where}: {message}", field=where, file=name,
            errors=[{"field": field_path(tuple(e["loc"])), "message": e["msg"]} for e in errors[:20]],
        ) from None


def load_digest(model: type[D], path: Path, name: str) -> D:
    """Parse and validate in one pass (pydantic reads the bytes: a third faster than building
    the dicts first); a file that fails goes through ``read_json`` + ``validate_digest`` again,
    so every error names the file and the field exactly as before."""
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is not None and len(data) <= MAX_DIGEST_BYTES:
        try:
            return model.model_validate_json(data)
        except ValidationError:
            pass
    return validate_digest(model, read_json(path, name), name)


def load_platform_digest(path: Path, name: str | None = None) -> PlatformDigest:
    """Read one platform digest; its ``week`` must match the file's name."""
    shown = name or path.name
    digest = load_digest(PlatformDigest, path, shown)
    if WEEK_LABEL_RE.match(path.stem) and digest.week != path.stem:
        raise ValidationFailed(f"{shown}: week: {digest.week} does not match the file name", field="week",
                               file=shown)
    return digest


def load_risk_digest(path: Path, name: str | None = None) -> RiskDigest:
    """Read one risk digest; its ``date`` must match the file's name."""
    shown = name or path.name
    digest = load_digest(RiskDigest, path, shown)
    if DATE_NAME_RE.match(path.stem) and digest.date.isoformat() != path.stem:
        raise ValidationFailed(f"{shown}: date: {digest.date} does not match the file name", field="date",
                               file=shown)
    return digest


def dump_digest(digest: PlatformDigest | RiskDigest) -> dict[str, Any]:
    """The JSON form a producer writes (``schema`` spelled as in the file)."""
    return digest.model_dump(mode="json", by_alias=True, exclude_none=False)
