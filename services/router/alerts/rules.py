"""Alert rules from the policy's ``alerts:`` section, evaluated per env — pure, no I/O.

Defaults are the runbook's two thresholds: ``overdue_count > 5`` notifies oncall, and any P0
item overdue pages the CTO.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.router.alerts.escalation import EscalationStep, check_steps
from services.router.domain.queries import OverdueIds

Metric = Literal["overdue_count", "overdue_p0", "overdue_p1", "overdue_p2", "overdue_p3"]
OVERDUE_BY_PRIORITY: dict[str, str] = {f"overdue_p{i}": f"P{i}" for i in range(4)}
NONE_OVERDUE = OverdueIds(0, [])


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    metric: Metric
    gt: int | None = Field(default=None, ge=0)
    gte: int | None = Field(default=None, ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    action: Literal["notify", "page"] = "notify"
    target: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.gt is None) == (self.gte is None):
            raise ValueError("an alert rule needs exactly one of gt, gte")
        return self

    def fires(self, value: int) -> bool:
        return value > self.gt if self.gt is not None else value >= (self.gte or 0)

    def describe(self) -> str:
        return f"{self.metric} {'>' if self.gt is not None else '>='} {self.gt if self.gt is not None else self.gte}"


def default_rules() -> list[AlertRule]:
    return [
        AlertRule(name="overdue_backlog", metric="overdue_count", gt=5, severity="warning", action="notify",
                  target="oncall"),
        AlertRule(name="p0_overdue", metric="overdue_p0", gt=0, severity="critical", action="page", target="CTO"),
    ]


class Reminders(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_owner_daily: bool = True


class AlertsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    envs: list[str] = Field(default_factory=lambda: ["prod"], min_length=1)
    cooldown_minutes: int = Field(default=240, ge=1, le=10_080)
    rules: list[AlertRule] = Field(default_factory=default_rules)
    reminders: Reminders = Field(default_factory=Reminders)
    escalation: list[EscalationStep] = Field(default_factory=list, max_length=20)

    @field_validator("escalation")
    @classmethod
    def _ordered(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        return check_steps(steps)


def evaluate(
    rules: list[AlertRule], *, env: str | None, dashboard: dict[str, Any],
    overdue_by_priority: dict[str, OverdueIds],
) -> list[dict[str, Any]]:
    """The alerts that fire for one env: ``[{rule, severity, action, target, message, items}]``.

    ``overdue_by_priority`` holds each priority's overdue count and first ids (``overdue_ids``).
    """
    alerts: list[dict[str, Any]] = []
    scope = env or "all envs"
    for rule in rules:
        if rule.metric == "overdue_count":
            value = int(dashboard["overdue_count"])
            items = [o["id"] for o in dashboard["overdue"]]
        else:
            value, items = overdue_by_priority.get(OVERDUE_BY_PRIORITY[rule.metric], NONE_OVERDUE)
        if not rule.fires(value):
            continue
        priority = OVERDUE_BY_PRIORITY.get(rule.metric)
        what = f"overdue {priority} items" if priority else "overdue items"
        alerts.append({
            "rule": rule.name, "severity": rule.severity, "action": rule.action, "target": rule.target,
            "env": env, "value": value,
            "message": f"{scope}: {value} {what} ({rule.describe()}) — {rule.action} {rule.target}",
            "items": items,
        })
    return alerts
