"""Digest and policy builders for the generation tests: a test says only the numbers it cares about."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO = Path(__file__).resolve().parents[2]
QUIET_SIGNALS: dict[str, Any] = {
    "risk_avg_7d": 10.0, "risk_max_7d": 20.0, "risk_delta_7d": 0.0, "incidents_30d": 0,
    "recurring_incidents_30d": 0, "slo_breaches_7d": 0, "overdue_followups": 0, "open_critical_vulns": 0,
    "failed_deploys_7d": 0,
}


def svc(service: str, pressure: float = 40.0, band: str = "medium", evidence: list[dict[str, Any]] | None = None,
        **signals: Any) -> dict[str, Any]:
    """One service of a platform digest; unnamed signals are quiet (no rule holds)."""
    return {"service": service, "pressure_score": pressure, "band": band,
            "signals": {**QUIET_SIGNALS, **signals}, "evidence": evidence or []}


def platform(week: str, envs: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    return {"schema": "platform_priority_digest/v1", "week": week, "generated_at": "2026-11-23T06:00:02Z",
            "period": {"start": "2026-11-16T06:00:02Z", "end": "2026-11-23T06:00:02Z"},
            "envs": {env: {"services": services} for env, services in envs.items()}, **extra}


def risk_svc(service: str, score: float, band: str, **extra: Any) -> dict[str, Any]:
    return {"service": service, "score": score, "band": band, "parts": {"open_incidents": score},
            "delta_24h": None, "delta_7d": 5.0, **extra}


def risk(day: str, envs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"schema": "risk_digest/v1", "date": day, "generated_at": f"{day}T09:00:00Z",
            "envs": {env: {"services": services} for env, services in envs.items()}}


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
    return path


def policy_data(**sections: dict[str, Any]) -> dict[str, Any]:
    """The shipped policy with some sections' keys replaced (``generation={...}``)."""
    data = yaml.safe_load((REPO / "config" / "backlog_policy.yml").read_text(encoding="utf-8"))
    out = copy.deepcopy(data)
    for name, values in sections.items():
        out[name] = {**out.get(name, {}), **values}
    return dict(out)


def write_policy(path: Path, **sections: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(policy_data(**sections)), encoding="utf-8")
    return path


def file_sizes(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its size (the JSONL byte-for-byte check)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()
            and not os.path.basename(p).endswith(".lock")}
