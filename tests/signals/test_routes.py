"""POST /v1/signals and /v1/signals/alertmanager over HTTP with the shipped RBAC accounts.

The app factory registers them (``routes_signals.register``) and its deny-by-default check
covers them like every other route.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.router.api import create_app
from services.router.api.auth import SECURITY_REQUIREMENT, ActionGuard, guard_of
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
