"""Load and validate ``config/backlog_policy.yml`` (RUNBOOK §8, DESIGN §5).

An invalid file is one ``PolicyInvalid`` naming the file, the key and what was expected, so an
operator can fix it without reading code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.router.alerts.rules import AlertsPolicy
from services.router.config_file import load_config_file
from services.router.domain.enums import Priority
from services.router.domain.models import SLUG_PATTERN, Slug

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
    envs: list[Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]] = Field(
        default_factory=list, max_length=100,
        description="envs that exist even before they have items or signals (with alerts.envs: never "
                    "reported as unknown)",
    )

    def categories_for(self, digest: Literal["weekly", "daily"]) -> dict[str, Category]:
        return {name: c for name, c in self.categories.items() if c.digest == digest}


def load_policy(path: Path) -> BacklogPolicy:
    """Read and validate a policy file; a missing file is an error, not silent defaults."""
    return load_config_file(BacklogPolicy, path, "policy file")
