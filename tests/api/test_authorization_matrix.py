"""The authorization matrix, generated from the tool registry and the app's route table.

Every registered action (through ``/v1/tools/execute``) and every guarded route is called as
each of {no key, wrong key, readonly, oncall, scheduler, admin}; the expected status is
computed from the action's declared entitlement and the account's entitlements in
``config/rbac.yml``. Deny by default: a route that does not name a registered action, or an
action whose entitlement is malformed, fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.router.access.auth import PUBLIC_PATHS, TRACKER_SECRET_ROUTES, ActionGuard, DispatchGuard, guard_of
from services.router.access.rbac import ENTITLEMENT_PATTERN
from services.router.app.factory import document_guards
from services.router.errors import NotFound
from services.router.runtime import Runtime
from services.router.tools.catalog import build_registry
from services.router.tools.registry import ActionSpec, grants
from tests.api.conftest import ROLES, make_rbac, new_item, route_table_app

REGISTRY = build_registry()
SPECS = REGISTRY.specs()
ACCOUNTS = {a.name: a for a in make_rbac().accounts}

# DESIGN §9: reads need .read, item writes .write, generation and cleanup .admin.
DESIGNED_LEVELS = {
    "backlog_tool.list": "read", "backlog_tool.get": "read", "backlog_tool.events": "read",
    "backlog_tool.dashboard": "read", "backlog_tool.upsert": "write", "backlog_tool.set_status": "write",
    "backlog_tool.add_comment": "write", "backlog_tool.cleanup": "admin", "backlog_tool.auto_generate_weekly": "admin",
    "backlog_tool.auto_generate_daily": "admin", "backlog_tool.accept": "admin", "backlog_tool.unaccept": "admin",
    "backlog_tool.trends": "read", "backlog_tool.problems": "read",
    "backlog_tool.set_owner": "write", "backlog_tool.set_due_date": "write",
}
# Valid params for each known action, so an authorized call succeeds. `{id}` is an existing item.
# An action missing here (a tool registered later) is still checked: allowed ⇒ neither 401 nor 403.
SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "backlog_tool.list": {"env": "prod"},
    "backlog_tool.get": {"id": "{id}"},
    "backlog_tool.events": {"id": "{id}"},
    "backlog_tool.dashboard": {"env": "prod"},
    "backlog_tool.upsert": {"env": "prod", "service": "api", "category": "security", "title": "Patch"},
    "backlog_tool.set_status": {"id": "{id}", "status": "in_progress"},
    "backlog_tool.add_comment": {"id": "{id}", "message": "looking"},
    "backlog_tool.cleanup": {"retention_days": 180},
    "backlog_tool.auto_generate_weekly": {"env": "prod"},
    "backlog_tool.auto_generate_daily": {"env": "prod"},
    "backlog_tool.accept": {"id": "{id}", "until": "2026-12-20", "reason": "vendor patch on its way"},
    "backlog_tool.unaccept": {"id": "{id}"},
    "tracker_tool.sync": {"dry_run": True},  # no trackers file here: skipped with the reason
    "tracker_tool.status": {},
    "backlog_tool.trends": {"env": "prod", "weeks": 4},
    "backlog_tool.problems": {"env": "prod"},
    "backlog_tool.set_owner": {"id": "{id}", "owner": "team-edge"},
    "backlog_tool.set_due_date": {"id": "{id}", "due_date": "2026-12-24"},
}
# Authorized but refused by the state of the world: generation without a digest is a 409.
AUTHORIZED_REFUSALS = {"backlog_tool.auto_generate_weekly": {409}, "backlog_tool.auto_generate_daily": {409}}

# One request per guarded route: (method, path template) → request kwargs. `{id}` as above.
ROUTE_SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/tools/execute"): {"json": {"tool": "backlog_tool", "action": "list"}},
    ("GET", "/v1/backlog/dashboard"): {"params": {"env": "prod"}},
    ("POST", "/v1/backlog/generate/weekly"): {"params": {"env": "prod", "dry_run": "true"}},
    ("GET", "/v1/backlog/items"): {"params": {"env": "prod", "limit": 10}},
    ("GET", "/v1/backlog/items/{item_id}"): {},
    ("GET", "/v1/backlog/items/{item_id}/events"): {},
    ("POST", "/v1/backlog/items"): {"json": SAMPLE_PARAMS["backlog_tool.upsert"]},
    ("POST", "/v1/backlog/items/{item_id}/status"): {"json": {"status": "blocked"}},
    ("POST", "/v1/backlog/items/{item_id}/comments"): {"json": {"message": "on it"}},
    ("POST", "/v1/backlog/items/{item_id}/accept"): {"json": {"until": "2026-12-20", "reason": "vendor patch"}},
    ("POST", "/v1/backlog/items/{item_id}/unaccept"): {"json": {"dry_run": True}},
    ("POST", "/v1/backlog/cleanup"): {"json": {"retention_days": 180, "dry_run": True}},
    ("GET", "/v1/backlog/trends"): {"params": {"env": "prod", "weeks": 8}},
    ("GET", "/v1/backlog/problems"): {"params": {"env": "prod"}},
    ("POST", "/v1/backlog/items/{item_id}/owner"): {"json": {"owner": "team-edge"}},
    ("POST", "/v1/backlog/items/{item_id}/due-date"): {"json": {"due_date": None}},
    ("POST", "/v1/signals"): {"json": {"signals": [], "dry_run": True}},
    ("POST", "/v1/signals/alertmanager"): {
        "params": {"dry_run": "true"},
        "json": {"version": "4", "groupKey": "{}", "status": "firing", "receiver": "backlog", "alerts": []},
    },
}


def api_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


def route_cases() -> list[tuple[str, str]]:
    app = route_table_app()
    return sorted((m, r.path) for r in api_routes(app) if r.path not in PUBLIC_PATHS | TRACKER_SECRET_ROUTES
                  for m in r.methods or ())


def expected_status(role: str, entitlement: str) -> str:
    if role in ("no key", "wrong key"):
        return "401"
    return "allowed" if grants(ACCOUNTS[role].entitlements, entitlement) else "403"


def fill(value: Any, item_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{id}", item_id)
    if isinstance(value, dict):
        return {k: fill(v, item_id) for k, v in value.items()}
    return value


def check(response: Any, expected: str, entitlement: str, ok: set[int]) -> None:
    if expected == "401":
        assert response.status_code == 401, response.text
        assert response.json()["error"].startswith("missing or unknown API key")
    elif expected == "403":
        assert response.status_code == 403, response.text
        assert response.json()["entitlement"] == entitlement
        assert entitlement in response.json()["error"]
    else:
        assert response.status_code in ok, response.text


# -- declarations -------------------------------------------------------------------------------
def test_every_action_declares_a_well_formed_entitlement() -> None:
    assert SPECS, "no actions registered"
    for spec in SPECS:
        assert re.match(ENTITLEMENT_PATTERN, spec.entitlement), spec
        name = f"{spec.tool}.{spec.action}"
        if name in DESIGNED_LEVELS:
            assert spec.level == DESIGNED_LEVELS[name], f"{name} declares {spec.level}"


def test_every_route_declares_a_registered_action_or_is_public(app: FastAPI, runtime: Runtime) -> None:
    public = {r.path for r in api_routes(app) if guard_of(r) is None}
    # Tracker webhooks authenticate with the tracker's secret instead of a key (tests/trackers/test_webhooks.py).
    assert public == {"/healthz", "/readyz", "/metrics", *TRACKER_SECRET_ROUTES}
    assert public <= PUBLIC_PATHS | TRACKER_SECRET_ROUTES
    for route in api_routes(app):
        guard = guard_of(route)
        if isinstance(guard, ActionGuard):
            try:
                runtime.registry.get(guard.tool, guard.action)
            except NotFound:
                pytest.fail(f"{route.path} runs {guard.name}, which is not registered (deny by default)")
        else:
            assert guard is None or isinstance(guard, DispatchGuard)
    assert sorted(ROUTE_SAMPLES) == route_cases(), "add a sample request for each new route"


def test_an_unguarded_route_refuses_to_start(app: FastAPI, runtime: Runtime) -> None:
    def leak() -> dict[str, str]:
        return {"secret": "data"}

    app.add_api_route("/v1/leak", leak, methods=["GET"])
    with pytest.raises(RuntimeError, match="declares no registry action"):
        document_guards(app, runtime)


def test_the_matrix_is_what_the_design_says() -> None:
    """A hand-written pin of the computed matrix for backlog_tool, so config and code cannot drift together."""
    levels = {"read": ["readonly", "oncall", "scheduler", "admin"], "write": ["oncall", "scheduler", "admin"],
              "admin": ["scheduler", "admin"]}
    for level, allowed in levels.items():
        for role in ROLES[2:]:
            want = "allowed" if role in allowed else "403"
            assert expected_status(role, f"tools.backlog.{level}") == want, (role, level)
    assert ACCOUNTS["scheduler"].entitlements == {"tools.backlog.admin", "tools.pressure.write", "tools.risk.write",
                                                     "tools.tracker.admin"}


# -- the matrix -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.tool}.{s.action}")
def test_tool_action_matrix(spec: ActionSpec, role: str, client: TestClient, as_role: Callable[..., Any]) -> None:
    name = f"{spec.tool}.{spec.action}"
    item_id = new_item(client)["id"]
    # Unknown write actions run as dry runs (DESIGN §9: every write accepts dry_run): no side effects.
    unknown = {} if spec.level == "read" else {"dry_run": True}
    params = fill(SAMPLE_PARAMS.get(name, unknown), item_id)
    response = as_role(role, "post", "/v1/tools/execute", json={"tool": spec.tool, "action": spec.action, **params})
    expected = expected_status(role, spec.entitlement)
    ok = {200} | AUTHORIZED_REFUSALS.get(name, set()) if name in SAMPLE_PARAMS else set(range(200, 500)) - {401, 403}
    check(response, expected, spec.entitlement, ok)
    if expected == "allowed" and response.status_code == 200:
        assert response.json()["ok"] is True and response.json()["action"] == spec.action


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", route_cases(), ids=lambda c: f"{c[0]} {c[1]}")
def test_route_matrix(case: tuple[str, str], role: str, app: FastAPI, client: TestClient,
                      as_role: Callable[..., Any]) -> None:
    method, path = case
    route = next(r for r in api_routes(app) if r.path == path and method in (r.methods or ()))
    guard = guard_of(route)
    assert guard is not None, f"{method} {path} declares no action (deny by default)"
    item_id = new_item(client)["id"]
    sample = fill(ROUTE_SAMPLES[case], item_id)
    tool, action = (sample["json"]["tool"], sample["json"]["action"]) if isinstance(guard, DispatchGuard) else (
        guard.tool, guard.action)
    try:
        spec = REGISTRY.get(tool, action)
    except NotFound:
        pytest.fail(f"{method} {path} runs {tool}.{action}, which is not registered: no entitlement to check")
    response = as_role(role, method, path.replace("{item_id}", item_id), **sample)
    ok = {200} | AUTHORIZED_REFUSALS.get(f"{spec.tool}.{spec.action}", set())
    check(response, expected_status(role, spec.entitlement), spec.entitlement, ok)
