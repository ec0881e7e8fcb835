"""Valid signal dicts per kind, so tests state only the fields that matter to them."""

from __future__ import annotations

from typing import Any

from services.router.signals.models import AnySignal, parse_signal

BASE = {"env": "prod", "service": "gateway"}


def incident(ident: str = "INC-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "incident", "id": ident, **BASE, "source": f"https://inc.example/{ident}",
            "title": "Checkout 5xx spike", "severity": "sev2", "status": "open",
            "started_at": "2026-11-26T10:00:00Z", **fields}


def alert(ident: str = "fp-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "alert", "id": ident, **BASE, "source": "https://prom.example/graph",
            "alertname": "HighErrorRate", "severity": "critical", "status": "firing",
            "starts_at": "2026-11-26T11:00:00Z", **fields}


def slo_breach(ident: str = "SLO-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "slo_breach", "id": ident, **BASE, "source": "https://slo.example/availability",
            "slo": "availability", "burn_rate": 2.0, "at": "2026-11-26T09:00:00Z", **fields}


def followup(ident: str = "FU-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "followup", "id": ident, **BASE, "source": f"https://tickets.example/{ident}",
            "title": "Add pool saturation alert", "due_date": "2026-11-20", "status": "open",
            "incident_ref": "INC-1", **fields}


def deploy(ident: str = "DEP-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "deploy", "id": ident, **BASE, "source": f"https://ci.example/{ident}",
            "result": "failed", "version": "v1.2.3", "at": "2026-11-26T08:00:00Z", **fields}


def vulnerability(ident: str = "VULN-1", **fields: Any) -> dict[str, Any]:
    return {"kind": "vulnerability", "id": ident, **BASE, "source": f"https://scanner.example/{ident}",
            "cve": "CVE-2026-12345", "package": "openssl", "severity": "critical", "status": "open",
            "detected_at": "2026-11-01T00:00:00Z", **fields}


BUILDERS = {"incident": incident, "alert": alert, "slo_breach": slo_breach, "followup": followup,
            "deploy": deploy, "vulnerability": vulnerability}


def signals(*dicts: dict[str, Any]) -> list[AnySignal]:
    return [parse_signal(d) for d in dicts]
