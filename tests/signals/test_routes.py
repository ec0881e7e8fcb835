"""POST /v1/signals and /v1/signals/alertmanager over HTTP with the shipped RBAC accounts.

The app factory registers them (``routes_signals.register``) and its deny-by-default check
covers them like every other route.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.router.access.auth import SECURITY_REQUIREMENT, ActionGuard, guard_of
from services.router.app import create_app
from services.router.runtime import Runtime
from tests.api.conftest import KEYS, make_rbac
from tests.signals.builders import deploy, incident
from tests.signals.test_alertmanager import FIRING


def signal_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute) and r.path.startswith("/v1/signals")]


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(runtime, make_rbac())
    assert [r.openapi_extra for r in signal_routes(app)] == [
        {"x-entitlement": "tools.signals.write", "x-action": "signals_tool.ingest", "security": SECURITY_REQUIREMENT},
        {"x-entitlement": "tools.signals.write", "x-action": "signals_tool.alertmanager",
         "security": SECURITY_REQUIREMENT}]
    with TestClient(app) as test_client:
        yield test_client


def key(account: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[account]}


def test_routes_declare_their_guard(runtime: Runtime) -> None:
    app = create_app(runtime, make_rbac())
    guards = {route.path: guard_of(route) for route in signal_routes(app)}
    assert {p: (g.tool, g.action) for p, g in guards.items() if isinstance(g, ActionGuard)} == {
        "/v1/signals": ("signals_tool", "ingest"), "/v1/signals/alertmanager": ("signals_tool", "alertmanager")}


def test_batch_lists_accepted_and_rejected(client: TestClient) -> None:
    body: dict[str, Any] = {"signals": [incident(), {"kind": "deploy", "id": "x"}, "junk", deploy()]}
    res = client.post("/v1/signals", json=body, headers=key("alertmanager"))
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["counts"]["accepted"] == 2 and out["counts"]["rejected"] == 2
    assert [r["index"] for r in out["rejected"]] == [1, 2]
    assert "result: required field is missing" in out["rejected"][0]["reason"]
    again = client.post("/v1/signals", json=[incident(), deploy()], headers=key("admin")).json()
    assert again["counts"]["unchanged"] == 2, "a bare array works, and a resend changes nothing"


def test_alertmanager_webhook(client: TestClient) -> None:
    res = client.post("/v1/signals/alertmanager", json=FIRING,
                      headers={"Authorization": f"Bearer {KEYS['alertmanager']}"})
    assert res.status_code == 200, res.text
    assert [a["id"] for a in res.json()["accepted"]] == ["1a30ba71cca2921f", "c6eadffa33fcdf37"]
    bad = client.post("/v1/signals/alertmanager", json={"receiver": "x"}, headers=key("alertmanager"))
    assert bad.status_code == 422 and bad.json()["field"] == "payload.status"


@pytest.mark.parametrize(("account", "status"), [("readonly", 403), ("oncall", 403), ("scheduler", 403)])
def test_entitlement_is_required(client: TestClient, account: str, status: int) -> None:
    res = client.post("/v1/signals", json={"signals": [incident()]}, headers=key(account))
    assert res.status_code == status and "tools.signals.write" in res.json()["error"]
    assert client.post("/v1/signals/alertmanager", json=FIRING).status_code == 401


def test_body_must_be_a_batch(client: TestClient) -> None:
    res = client.post("/v1/signals", json={"signal": []}, headers=key("alertmanager"))
    assert res.status_code == 422


def test_runbook_digest_call_through_the_router(client: TestClient) -> None:
    client.post("/v1/signals", json=[incident(), deploy()], headers=key("alertmanager"))
    scheduler = {"Authorization": f"Bearer {KEYS['scheduler']}"}
    for body in ({"tool": "risk_history_tool", "action": "snapshot", "env": "prod"},
                 {"tool": "risk_history_tool", "action": "digest", "env": "prod"},
                 {"tool": "risk_history_tool", "action": "cleanup"},
                 {"tool": "architecture_pressure_tool", "action": "digest", "env": "prod"}):
        res = client.post("/v1/tools/execute", json=body, headers=scheduler)
        assert res.status_code == 200, (body, res.text)
    latest = client.post("/v1/tools/execute", json={"tool": "architecture_pressure_tool", "action": "latest"},
                         headers=key("oncall"))
    assert latest.json()["result"]["week"] == "2026-W48"
    denied = client.post("/v1/tools/execute", json={"tool": "risk_history_tool", "action": "snapshot"},
                         headers=key("oncall"))
    assert denied.status_code == 403 and "tools.risk.write" in denied.json()["error"]


def rejected_series(client: TestClient) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("backlog_signals_rejected_total{"):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(part.split("=", 1) for part in labels[len("backlog_signals_rejected_total{"):-1].split(","))
            out[(pairs["kind"].strip('"'), pairs["reason"].strip('"'))] = float(value)
    return out


def test_rejected_alerts_are_counted_and_logged_without_their_label_values(
    client: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    """Alertmanager gets 200 (it would retry forever otherwise); nobody reads the body, so each
    rejection is also a warning line (codes and counts, no label values) and a counter."""
    before = rejected_series(client)
    assert before[("alert", "missing_service")] == 0 and before[("unknown", "unknown_kind")] == 0
    payload = copy.deepcopy(FIRING)
    payload["alerts"][0]["labels"].pop("service")  # the project's own rules carry none
    payload["alerts"][0]["labels"]["token"] = "label-value-canary-7f3a"
    payload["alerts"][1]["labels"]["severity"] = "sev-canary-99"
    payload["alerts"].append({**FIRING["alerts"][0], "fingerprint": "ffff0000ffff0000"})
    caplog.set_level(logging.WARNING, logger="backlog.signals")
    res = client.post("/v1/signals/alertmanager", json=payload, headers=key("alertmanager"))
    assert res.status_code == 200 and res.json()["counts"] == {**res.json()["counts"], "accepted": 1, "rejected": 2}
    assert [r["code"] for r in res.json()["rejected"]] == ["missing_service", "unknown_severity"]
    lines = [r.getMessage() for r in caplog.records if r.name == "backlog.signals"]
    assert lines == ["signals_tool.alertmanager rejected 2 of 3 signal(s): missing_service=1, unknown_severity=1"]
    assert "canary" not in caplog.text
    dry = client.post("/v1/signals/alertmanager?dry_run=true", json=payload, headers=key("alertmanager"))
    assert dry.status_code == 200, "a dry run drops nothing: not counted"
    client.post("/v1/signals", json=[{"kind": "page", "id": "x"}, {"kind": "deploy", "id": "y"}],
                headers=key("alertmanager"))
    bad = client.post("/v1/signals/alertmanager", json={"alerts": [{}, {}]}, headers=key("alertmanager"))
    assert bad.status_code == 422
    after = rejected_series(client)
    changed = {k: v - before[k] for k, v in after.items() if v != before[k]}
    assert changed == {("alert", "missing_service"): 1, ("alert", "unknown_severity"): 1,
                       ("unknown", "unknown_kind"): 1, ("deploy", "missing_field"): 1,
                       ("alert", "invalid_payload"): 2}
