"""Load and validate ``config/backlog_policy.yml`` (RUNBOOK §8, DESIGN §5).

An invalid file is one ``PolicyInvalid`` naming the file, the key and what was expected, so an
operator can fix it without reading code.
"""

from __future__ import annotations

import operator
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.router.alerts.rules import AlertsPolicy
from services.router.domain.enums import Priority
from services.router.domain.models import SLUG_PATTERN, Slug
from services.router.errors import PolicyInvalid

WEEKLY_SIGNALS: frozenset[str] = frozenset({
    "pressure_score", "risk_avg_7d", "risk_max_7d", "risk_delta_7d", "incidents_30d",
    "recurring_incidents_30d", "slo_breaches_7d", "overdue_followups", "open_critical_vulns",
    "failed_deploys_7d", "band",
})
DAILY_SIGNALS: frozenset[str] = frozenset({"risk_score", "risk_band", "delta_24h", "delta_7d"})
OPERATORS = ("gte", "gt", "lte", "lt", "eq", "in")
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt,
}

Number = float | int
M = TypeVar("M", bound=BaseModel)
Strict = ConfigDict(extra="forbid")


class Rule(BaseModel):
    """``{signal: name, <op>: value}`` with exactly one operator."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    signal: Annotated[str, Field(min_length=1, max_length=64)]
    gte: Number | None = None
    gt: Number | None = None
    lte: Number | None = None
    lt: Number | None = None
    eq: Number | str | None = None
    in_: list[Number | str] | None = Field(default=None, alias="in", min_length=1)

    @model_validator(mode="after")
    def _one_operator(self) -> Rule:
        used = [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]
        if len(used) != 1:
            raise ValueError(f"a rule needs exactly one operator of {', '.join(OPERATORS)}; got {used or 'none'}")
        return self

    @cached_property
    def operator(self) -> str:
        # cached: generation evaluates every rule for every service of a digest
        return next(op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None)

    @cached_property
    def threshold(self) -> Any:
        return getattr(self, "in_" if self.operator == "in" else self.operator)

    def holds(self, value: Any) -> bool:
        """Missing or non-comparable signal values never trigger."""
        if value is None:
            return False
        op, ref = self.operator, self.threshold
        if op == "in":
            return bool(value in ref)
        if op == "eq":
            return bool(value == ref)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return bool(COMPARISONS[op](value, ref))

    def describe(self) -> str:
        symbol = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "==", "in": "in"}[self.operator]
        return f"{self.signal} {symbol} {self.threshold}"


class Category(BaseModel):
    model_config = Strict

    priority: Priority
    due_days: int = Field(ge=0, le=3650)
    digest: Literal["weekly", "daily"] = "weekly"
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_signals(self) -> Category:
        known = WEEKLY_SIGNALS if self.digest == "weekly" else DAILY_SIGNALS
        for rule in self.rules:
            if rule.signal not in known:
                raise ValueError(
                    f"unknown {self.digest} signal {rule.signal!r}; expected one of {', '.join(sorted(known))}"
                )
        return self


class Defaults(BaseModel):
    model_config = Strict

    retention_days: int = Field(default=180, ge=1, le=36500)
    max_items_per_run: int = Field(default=50, ge=0, le=100_000)


class Dedupe(BaseModel):
    model_config = Strict

    key_prefix: str = Field(default="platform_backlog", pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)


class Generation(BaseModel):
    model_config = Strict

    weekly_from_pressure_digest: bool = True
    daily_from_risk_digest: bool = False


class Ownership(BaseModel):
    model_config = Strict

    default_owner: Slug = "oncall"
    overrides: dict[Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)], Slug] = Field(
        default_factory=dict
    )

    def owner_for(self, service: str) -> tuple[str, str]:
        """The owner of a service's generated items and why (shown on the item)."""
        if service in self.overrides:
            return self.overrides[service], f"ownership.overrides[{service}]"
        return self.default_owner, "ownership.default_owner"


def default_categories() -> dict[str, Category]:
    def cat(priority: str, due: int, rules: list[dict[str, Any]], digest: str = "weekly") -> Category:
        return Category.model_validate({"priority": priority, "due_days": due, "rules": rules, "digest": digest})

    return {
        "arch_review": cat("P1", 14, [{"signal": "pressure_score", "gte": 70},
                                      {"signal": "recurring_incidents_30d", "gte": 2}]),
        "slo_hardening": cat("P1", 14, [{"signal": "slo_breaches_7d", "gte": 1}]),
        "followup_debt": cat("P2", 7, [{"signal": "overdue_followups", "gte": 3}]),
        "security": cat("P0", 7, [{"signal": "open_critical_vulns", "gte": 1}]),
        "deploy_safety": cat("P2", 21, [{"signal": "failed_deploys_7d", "gte": 3}]),
        "risk_reduction": cat("P1", 7, [{"signal": "risk_band", "in": ["critical"]}], "daily"),
    }


class BacklogPolicy(BaseModel):
    model_config = Strict

    defaults: Defaults = Field(default_factory=Defaults)
    dedupe: Dedupe = Field(default_factory=Dedupe)
    categories: dict[Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)], Category] = Field(
        default_factory=default_categories
    )
    generation: Generation = Field(default_factory=Generation)
    ownership: Ownership = Field(default_factory=Ownership)
    alerts: AlertsPolicy = Field(default_factory=AlertsPolicy)

    def categories_for(self, digest: Literal["weekly", "daily"]) -> dict[str, Category]:
        return {name: c for name, c in self.categories.items() if c.digest == digest}


def load_policy(path: Path) -> BacklogPolicy:
    """Read and validate a policy file; a missing file is an error, not silent defaults."""
    return load_config_file(BacklogPolicy, path, "policy file")


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int, int, int]  # inode, mtime, ctime, size
    text_hash: int
    settled: bool  # the file was older than the clock's granularity when read (see below)
    parsed: BaseModel


_loaded: dict[tuple[type[BaseModel], Path], _Loaded] = {}
_loaded_lock = threading.Lock()
RACY_NS = 2_000_000_000  # file timestamps tick coarsely: a rewrite this soon may keep the same mtime


def load_config_file(model: type[M], path: Path, what: str, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
                     shape: str = "a mapping at the top level") -> M:
    """Every YAML config (policy, risk policy, task registry) fails the same way: one line naming the file.

    Parsed once per version of the file: the router reads the policy on every request, and an
    edit applies to the next request without a restart. A file whose stamp (inode, mtime,
    ctime, size) is unchanged and that was already settled when read costs one ``stat``; one
    modified within the last two seconds is read and compared by content, because a rewrite
    within the same timestamp tick can leave the stamp as it was (git's "racy clean" problem).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise PolicyInvalid(f"{path}: {what} not found", file=str(path)) from exc
    except OSError as exc:
        raise PolicyInvalid(f"{path}: cannot read {what}: {exc}", file=str(path)) from exc
    stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    key = (model, path)
    with _loaded_lock:
        cached = _loaded.get(key)
    if cached is not None and cached.settled and cached.stamp == stamp:
        return cached.parsed  # type: ignore[return-value]
    settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS  # judged before reading
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyInvalid(f"{path}: {what} not found", file=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyInvalid(f"{path}: cannot read {what}: {exc}", file=str(path)) from exc
    text_hash = hash(text)
    if cached is not None and cached.stamp == stamp and cached.text_hash == text_hash:
        parsed = cached.parsed
    else:
        parsed = parse_config_text(model, text, path, loader=loader, shape=shape)
    with _loaded_lock:
        _loaded[key] = _Loaded(stamp, text_hash, settled, parsed)
    return parsed  # type: ignore[return-value]


def parse_config_text(model: type[M], text: str, path: Path, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
                      shape: str = "a mapping at the top level") -> M:
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise PolicyInvalid(f"{path}: not valid YAML: {exc}", file=str(path)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyInvalid(f"{path}: expected {shape}", file=str(path))
    return validate_config(model, data, path)


def validate_config(model: type[M], data: Any, path: Path) -> M:
    """Validate ``data`` and turn pydantic's report into one error naming file and keys."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [format_problem(err) for err in exc.errors()]
        raise PolicyInvalid(
            f"{path}: " + "; ".join(problems), file=str(path),
            keys=[".".join(str(p) for p in err["loc"]) for err in exc.errors()],
        ) from None


def format_problem(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key}"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    return f"{key}: {err['msg'].removeprefix('Value error, ')} (got {shown})"
