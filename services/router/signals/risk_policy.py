"""Load and validate ``config/risk_policy.yml``: risk and pressure weights, bands, retention, labels.

The weights are the product's judgement of what matters, so they live in a reviewed file, not
in code; a file that does not validate is one ``PolicyInvalid`` naming the file and the key
(the same ``validate_config`` as the backlog policy). The parsed policy is cached per file
version (inode, mtimes, size), because the hourly backfill loads it once per snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.router.config_file import load_config_file

Points = Annotated[float, Field(ge=0, le=100)]
Weight = Annotated[float, Field(ge=0, le=100)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128)]
Strict = ConfigDict(extra="forbid", frozen=True)


class Bands(BaseModel):
    """Lower bounds of each band above ``low``: low < medium ≤ … (a score equal to a bound is in it)."""

    model_config = Strict

    medium: float = Field(default=25, gt=0, le=100)
    high: float = Field(default=50, gt=0, le=100)
    critical: float = Field(default=75, gt=0, le=100)

    @model_validator(mode="after")
    def _increasing(self) -> Bands:
        if not self.medium < self.high < self.critical:
            raise ValueError(f"bands must increase: medium < high < critical (got {self.medium}, "
                             f"{self.high}, {self.critical})")
        return self

    def band(self, score: float) -> str:
        if score >= self.critical:
            return "critical"
        if score >= self.high:
            return "high"
        if score >= self.medium:
            return "medium"
        return "low"


class RiskWeights(BaseModel):
    """Points per open signal at the moment of the snapshot."""

    model_config = Strict

    incident_open: dict[str, Points] = Field(
        default_factory=lambda: {"sev1": 40.0, "sev2": 25.0, "sev3": 10.0, "sev4": 5.0})
    mitigated_factor: float = Field(default=0.5, ge=0, le=1, description="share of points a mitigated incident keeps")
    vulnerability_open: dict[str, Points] = Field(
        default_factory=lambda: {"critical": 20.0, "high": 8.0, "medium": 2.0, "low": 0.0})
    alert_firing: dict[str, Points] = Field(default_factory=lambda: {"critical": 15.0, "warning": 5.0, "info": 0.0})
    slo_breach_24h: Points = 10
    max_burn_factor: float = Field(default=3, ge=1, le=100, description="a breach counts burn_rate x points, capped")
    followup_overdue: Points = 5
    deploy_failed_24h: Points = 10

    @model_validator(mode="after")
    def _complete(self) -> RiskWeights:
        expected = {
            "incident_open": {"sev1", "sev2", "sev3", "sev4"},
            "vulnerability_open": {"critical", "high", "medium", "low"},
            "alert_firing": {"critical", "warning", "info"},
        }
        for name, keys in expected.items():
            got = set(getattr(self, name))
            if got != keys:
                raise ValueError(
                    f"{name} needs exactly the keys {', '.join(sorted(keys))} (got {', '.join(sorted(got))})")
        return self


class PressureWeights(BaseModel):
    """Points per unit of each weekly digest signal."""

    model_config = Strict

    risk_avg_7d: Weight = 0.5
    incidents_30d: Weight = 4
    recurring_incidents_30d: Weight = 8
    slo_breaches_7d: Weight = 6
    overdue_followups: Weight = 3
    open_critical_vulns: Weight = 10
    failed_deploys_7d: Weight = 3


class Risk(BaseModel):
    model_config = Strict

    weights: RiskWeights = Field(default_factory=RiskWeights)
    bands: Bands = Field(default_factory=Bands)


class Pressure(BaseModel):
    model_config = Strict

    weights: PressureWeights = Field(default_factory=PressureWeights)
    bands: Bands = Field(default_factory=lambda: Bands(medium=30, high=55, critical=80))
    max_evidence: int = Field(default=10, ge=0, le=100, description="evidence refs listed per service")


class Snapshots(BaseModel):
    model_config = Strict

    retention_days: int = Field(default=90, ge=8, le=3650, description="at least 8: the 7-day figures need them")


class AlertmanagerLabels(BaseModel):
    """Which labels name the service, env and severity (the first one present wins)."""

    model_config = Strict

    service_labels: list[LabelName] = Field(default_factory=lambda: ["service"], min_length=1)
    env_labels: list[LabelName] = Field(default_factory=lambda: ["env", "environment"], min_length=1)
    severity_labels: list[LabelName] = Field(default_factory=lambda: ["severity"], min_length=1)
    default_env: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)] | None = None
    default_severity: str = Field(default="warning", pattern=r"^(critical|warning|info)$")
    severity_aliases: dict[str, str] = Field(default_factory=lambda: {
        "page": "critical", "error": "critical", "high": "critical", "warn": "warning", "low": "info",
        "none": "info",
    })

    @model_validator(mode="after")
    def _aliases(self) -> AlertmanagerLabels:
        bad = {k: v for k, v in self.severity_aliases.items() if v not in ("critical", "warning", "info")}
        if bad:
            raise ValueError(f"severity_aliases must map to critical, warning or info (got {bad})")
        return self


class RiskPolicy(BaseModel):
    model_config = Strict

    risk: Risk = Field(default_factory=Risk)
    pressure: Pressure = Field(default_factory=Pressure)
    snapshots: Snapshots = Field(default_factory=Snapshots)
    alertmanager: AlertmanagerLabels = Field(default_factory=AlertmanagerLabels)


def load_risk_policy(path: Path) -> RiskPolicy:
    """Read and validate the file (cached until it changes); a missing file is an error, not defaults."""
    return load_config_file(RiskPolicy, path, "risk policy file")

