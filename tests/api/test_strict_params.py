"""Every parameter of every action is taken strictly, through every surface (issue 23, item 1).

A careless client must not turn a preview into a write or a typo into a deletion: ``false`` is
not ``0``, ``"off"`` is not ``False``, ``"1"`` is not ``1``, ``0`` is not a date. Each wrongly
typed value is a 422 naming the field, and nothing is written anywhere (items, events, signals,
snapshots, report and state files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router.clock import FixedClock
from services.router.domain.queries import ItemQuery
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from services.router.tools.catalog import build_registry
from tests.api.conftest import headers_for, new_item

ADMIN = headers_for("admin")
SIGNAL = {"kind": "incident", "id": "INC-1", "env": "prod", "service": "gateway", "source": "https://x.invalid/1",
          "title": "5xx", "severity": "sev2", "status": "open", "started_at": "2026-11-26T06:00:00Z"}
AM_PAYLOAD = {"version": "4", "status": "firing", "alerts": []}
ITEM_ID = "{item}"  # replaced by the seeded item's id

# Valid values for each action's required params, so the one wrongly typed value is the only error.
REQUIRED: dict[str, dict[str, Any]] = {
    "backlog_tool.get": {"id": ITEM_ID}, "backlog_tool.events": {"id": ITEM_ID},
    "backlog_tool.upsert": {"env": "prod", "service": "gateway", "category": "x", "title": "T"},
    "backlog_tool.set_status": {"id": ITEM_ID, "status": "in_progress"},
    "backlog_tool.add_comment": {"id": ITEM_ID, "message": "hi"},
    "backlog_tool.accept": {"id": ITEM_ID, "until": "2028-01-15", "reason": "vendor fix"},
    "backlog_tool.unaccept": {"id": ITEM_ID},
    "backlog_tool.auto_generate_weekly": {"env": "prod"}, "backlog_tool.auto_generate_daily": {"env": "prod"},
    "risk_history_tool.history": {"env": "prod", "service": "gateway"},
    "backlog_tool.problems": {"env": "prod"}, "backlog_tool.set_owner": {"id": ITEM_ID, "owner": "team-edge"},
    "backlog_tool.set_due_date": {"id": ITEM_ID, "due_date": "2026-12-24"},
    "architecture_pressure_tool.report": {"name": "2026-W48"}, "risk_history_tool.report": {"name": "2026-11-26"},
    "signals_tool.ingest": {"signals": [SIGNAL]}, "signals_tool.alertmanager": {"payload": AM_PAYLOAD},
    "tracker_tool.link": {"id": ITEM_ID, "url": "https://github.com/acme/platform/issues/1"},
    "tracker_tool.unlink": {"id": ITEM_ID},
}

# Wrongly typed values per JSON type; each is what lax parsing used to accept or coerce.
WRONG: dict[str, list[Any]] = {
    "boolean": [1, 0, "true", "false", "off", "no", "1", 0.0],
    "integer": [True, False, 1.5, 0.5, "1", "180", "1.0"],
    "string": [1, True, ["x"], {"a": "b"}],
    "date": [0, 20261201, "0", "1767225600", True],
    "date-time": [0, 1767225600, "0", "1767225600", True],
    "array": ["x", 1, True, {"a": "b"}],
    "object": ["x", 1, True, ["x"]],
    "number": [True, "1.5"],
}
QUERY_WRONG: dict[str, list[str]] = {"boolean": ["1", "0", "yes", "off", "True", "FALSE", ""],
                                     "integer": ["1.0", "true", "5x", " 5", "1e2", ""]}


def kind_of(schema: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The JSON kind a property takes (ignoring ``null``), or None when it takes anything."""
    if "$ref" in schema:
        return kind_of(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    if len(branches) != 1:
        return None
    branch = branches[0]
    if "$ref" in branch:
        return kind_of(defs[branch["$ref"].rsplit("/", 1)[1]], defs)
    kind = branch.get("type")
    if kind == "string" and branch.get("format") in ("date", "date-time"):
        return str(branch["format"])
    return kind if isinstance(kind, str) else None


def params_cases() -> list[tuple[str, str, str]]:
    cases = []
    for spec in build_registry().specs():
        schema = spec.params.model_json_schema()
        defs = schema.get("$defs", {})
        name = f"{spec.tool}.{spec.action}"
        required = set(schema.get("required", ()))
        missing = required - set(REQUIRED.get(name, {}))
        assert not missing, f"{name}: add valid values for {sorted(missing)} to REQUIRED"
        for param, prop in schema["properties"].items():
            kind = kind_of(prop, defs)
            if kind in WRONG:
                cases.append((name, param, kind))
    return cases


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def world(client: TestClient, store: MemoryBacklogStore, runtime: Runtime, clock: FixedClock,
          tmp_path: Path) -> Callable[[], Any]:
    """Seed an open item, a long-closed item, a signal and a snapshot; return a snapshot of everything."""
    new_item(client, "open")
    closed = new_item(client, "closed")
    client.post(f"/v1/backlog/items/{closed['id']}/status", json={"status": "done"}, headers=ADMIN)
    assert client.post("/v1/signals", json={"signals": [SIGNAL]}, headers=ADMIN).status_code == 200
    tool = {"tool": "risk_history_tool", "action": "snapshot"}
    assert client.post("/v1/tools/execute", json=tool, headers=ADMIN).status_code == 200
    clock.advance(days=400)

    def snapshot() -> Any:
        items = store.list(ItemQuery(limit=500)).items
        signals = runtime.execute("admin", "signals_tool", "list", {"limit": 1000})
        history = runtime.execute("admin", "risk_history_tool", "history", {"env": "prod", "service": "gateway",
                                                                           "days": 366})
        return ([(i, store.events(i["id"])) for i in items], signals, history["points"], files_under(tmp_path))

    return snapshot


def item_id(store: MemoryBacklogStore) -> str:
    return str(store.list(ItemQuery(limit=1)).items[0]["id"])


def fill(params: dict[str, Any], store: MemoryBacklogStore) -> dict[str, Any]:
    return {k: item_id(store) if v == ITEM_ID else v for k, v in params.items()}


@pytest.mark.parametrize(("action", "param", "kind"), params_cases())
def test_every_action_refuses_wrongly_typed_params(client: TestClient, store: MemoryBacklogStore,
                                                   world: Callable[[], Any], action: str, param: str,
                                                   kind: str) -> None:
    tool, _, name = action.partition(".")
    before = world()
    for value in WRONG[kind]:
        params = {**fill(REQUIRED.get(action, {}), store), param: value}
        response = client.post("/v1/tools/execute", json={"tool": tool, "action": name, "params": params},
                               headers=ADMIN)
        assert response.status_code == 422, (action, param, value, response.text)
        assert response.json()["field"] == param, response.text
    assert world() == before


def rest_cases() -> list[tuple[str, str, str, str, str]]:
    """Each REST operation's body fields and query parameters, from the served OpenAPI document."""
    from tests.api.conftest import route_table_app

    spec = route_table_app().openapi()
    defs = spec["components"]["schemas"]
    cases = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/") or path == "/v1/tools/execute":
            continue
        for method, op in ops.items():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "query":
                    kind = kind_of(parameter["schema"], defs)
                    if kind in QUERY_WRONG:
                        cases.append((method, path, "query", parameter["name"], kind))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is None:
                continue
            for branch in body.get("anyOf", [body]):
                if "$ref" not in branch:
                    continue
                model = defs[branch["$ref"].rsplit("/", 1)[1]]
                for field, prop in model.get("properties", {}).items():
                    kind = kind_of(prop, defs)
                    if kind in WRONG:
                        cases.append((method, path, "body", field, kind))
    return cases


REST_VALID: dict[str, dict[str, Any]] = {
    "/v1/backlog/items": {"env": "prod", "service": "gateway", "category": "x", "title": "T"},
    "/v1/backlog/items/{item_id}/status": {"status": "in_progress"},
    "/v1/backlog/items/{item_id}/comments": {"message": "hi"},
    "/v1/backlog/items/{item_id}/accept": {"until": "2028-01-15", "reason": "vendor fix"},
    "/v1/backlog/generate/weekly": {"env": "prod"},
    "/v1/backlog/items/{item_id}/owner": {"owner": "team-edge"},
    "/v1/backlog/items/{item_id}/due-date": {"due_date": "2026-12-24"},
    "/v1/signals": {"signals": [SIGNAL]},
    "/v1/signals/alertmanager": AM_PAYLOAD,
}


@pytest.mark.parametrize(("method", "path", "where", "field", "kind"), rest_cases())
def test_every_rest_route_refuses_wrongly_typed_values(client: TestClient, store: MemoryBacklogStore,
                                                       world: Callable[[], Any], method: str, path: str, where: str,
                                                       field: str, kind: str) -> None:
    url = path.replace("{item_id}", item_id(store))
    valid = dict(REST_VALID.get(path, {}))
    before = world()
    for value in (QUERY_WRONG if where == "query" else WRONG)[kind]:
        if where == "query":
            query = {**({"env": "prod"} if "generate" in path or "problems" in path else {}), field: value}
            response = client.request(method.upper(), url, params=query, headers=ADMIN,
                                      json=valid if method == "post" and "generate" not in path else None)
        else:
            response = client.request(method.upper(), url, json={**valid, field: value}, headers=ADMIN)
        assert response.status_code == 422, (method, path, field, value, response.text)
        assert response.json()["field"] == field, response.text
    assert world() == before


def test_cases_cover_the_risky_parameters() -> None:
    """The generic drivers above reach the parameters the incident was about (guards the schema walk)."""
    params = {(a, p) for a, p, _ in params_cases()}
    assert {("backlog_tool.cleanup", "retention_days"), ("backlog_tool.cleanup", "dry_run"),
            ("backlog_tool.upsert", "due_date"), ("risk_history_tool.snapshot", "as_of"),
            ("backlog_tool.list", "limit"), ("backlog_tool.trends", "weeks"),
            ("backlog_tool.set_due_date", "due_date"), ("backlog_tool.set_owner", "dry_run")} <= params
    rest = {(p, w, f) for _, p, w, f, _ in rest_cases()}
    assert {("/v1/backlog/cleanup", "body", "retention_days"), ("/v1/backlog/items", "query", "overdue"),
            ("/v1/backlog/items", "query", "limit"), ("/v1/backlog/generate/weekly", "query", "dry_run"),
            ("/v1/signals/alertmanager", "query", "dry_run"), ("/v1/signals", "body", "dry_run"),
            ("/v1/backlog/trends", "query", "weeks"), ("/v1/backlog/problems", "query", "limit"),
            ("/v1/backlog/items/{item_id}/due-date", "body", "due_date")} <= rest


@pytest.mark.parametrize("days", [False, True, 0, 0.0, "0", "180", -1, 1.5])
def test_cleanup_retention_must_be_a_positive_json_integer(client: TestClient, store: MemoryBacklogStore,
                                                           world: Callable[[], Any], days: Any) -> None:
    before = world()
    for call in ({"url": "/v1/backlog/cleanup", "json": {"retention_days": days}},
                 {"url": "/v1/tools/execute", "json": {"tool": "backlog_tool", "action": "cleanup",
                                                       "retention_days": days}}):
        response = client.post(**call, headers=ADMIN)  # type: ignore[arg-type]
        assert response.status_code == 422 and response.json()["field"] == "retention_days", response.text
    assert world() == before
    assert len(store.list(ItemQuery(status="done")).items) == 1  # the closed item is still there


def test_query_booleans_are_exactly_true_or_false(client: TestClient) -> None:
    new_item(client, "late", due_date="2026-01-01")
    assert len(client.get("/v1/backlog/items?overdue=true", headers=ADMIN).json()["items"]) == 1
    assert len(client.get("/v1/backlog/items?overdue=false", headers=ADMIN).json()["items"]) == 0
    assert client.get("/v1/backlog/items?limit=2", headers=ADMIN).status_code == 200


def test_a_whole_number_is_the_integer_json_schema_says_it_is(client: TestClient) -> None:
    """``180.0`` is 180 (JSON Schema: an integer is a number with a zero fractional part)."""
    body = {"tool": "backlog_tool", "action": "cleanup", "retention_days": 180.0, "dry_run": True}
    response = client.post("/v1/tools/execute", json=body, headers=ADMIN)
    assert response.status_code == 200 and response.json()["result"]["retention_days"] == 180
