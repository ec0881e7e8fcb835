"""OpenAPI carries the real constraints, and schemathesis finds no 5xx and no off-schema response."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from services.router.api.routes_tools import RUNBOOK_EXAMPLES
from services.router.tools.catalog import build_registry
from tests.api.conftest import headers_for, route_table_app


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def schema_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(spec["components"]["schemas"][name])


def test_request_bodies_forbid_unknown_fields_and_carry_limits(spec: dict[str, Any]) -> None:
    for name in ("UpsertBody", "StatusBody", "CommentBody", "CleanupBody"):
        assert schema_of(spec, name)["additionalProperties"] is False, name
    upsert = schema_of(spec, "UpsertBody")["properties"]
    assert upsert["env"]["pattern"] == "^[a-z0-9][a-z0-9._-]*$" and upsert["env"]["maxLength"] == 64
    assert upsert["title"]["maxLength"] == 200
    assert upsert["description"]["maxLength"] == 10_000
    assert schema_of(spec, "Status")["enum"] == ["open", "in_progress", "blocked", "done", "canceled"]
    assert schema_of(spec, "Priority")["enum"] == ["P0", "P1", "P2", "P3"]
    limit = next(p for p in spec["paths"]["/v1/backlog/items"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500


def test_rest_bodies_are_the_tool_params(spec: dict[str, Any]) -> None:
    """The REST bodies cannot drift from the tools' params models (plus agent_id, minus the path id)."""
    registry = build_registry()
    pairs = {"UpsertBody": "upsert", "StatusBody": "set_status", "CommentBody": "add_comment",
             "CleanupBody": "cleanup"}
    for body, action in pairs.items():
        params = set(registry.get("backlog_tool", action).params.model_fields) - {"id"}
        assert set(schema_of(spec, body)["properties"]) == params | {"agent_id"}, body


def test_operations_name_their_entitlement_and_auth(spec: dict[str, Any]) -> None:
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in op, path
                continue
            assert op["security"] == [{"ApiKey": []}, {"Bearer": []}], (method, path)
            assert "x-entitlement" in op or "x-entitlements" in op or "x-action" in op, (method, path)
    assert spec["paths"]["/v1/backlog/cleanup"]["post"]["x-entitlement"] == "tools.backlog.admin"
    assert spec["paths"]["/v1/tools/execute"]["post"]["x-entitlements"]["backlog_tool.upsert"] == "tools.backlog.write"


def body_is_valid(spec: dict[str, Any], path: str, body: Any) -> bool:
    """Whether ``body`` fits the document's request body schema of ``POST path`` (refs resolved in it)."""
    import jsonschema_rs

    pointer = "/".join(["#/paths", path.replace("/", "~1"), "post/requestBody/content/application~1json/schema"])
    schema = {**spec, "$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": pointer}
    return bool(jsonschema_rs.validator_for(schema).is_valid(body))


UPSERT = {"env": "prod", "service": "gateway", "category": "arch_review", "title": "Review gateway"}
EXECUTE = "/v1/tools/execute"
SAME_VERDICT = [  # (path, body): the document and the server must agree on each
    ("/v1/signals/alertmanager", {}),
    ("/v1/signals/alertmanager", {"status": "firing"}),
    ("/v1/signals/alertmanager", {"status": "firing", "alerts": [], "truncatedAlerts": True}),
    ("/v1/signals/alertmanager", {"status": "firing", "alerts": [], "groupKey": "{}", "orgId": 1}),  # extras ignored
    (EXECUTE, {"tool": "backlog_tool", "action": "list", "colour": "red"}),
    (EXECUTE, {"tool": "backlog_tool", "action": "list", "params": {"colour": "red"}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "list", "params": {}, "env": "prod"}),
    (EXECUTE, {"tool": "backlog_tool", "action": "list", "params": {"limit": 501}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "list", "overdue": "true"}),
    (EXECUTE, {"tool": "backlog_tool", "action": "cleanup", "retention_days": 0}),
    (EXECUTE, {"tool": "backlog_tool", "action": "cleanup", "retention_days": 180, "dry_run": True}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "title": "   "}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "title": "Review \u202egateway"}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "description": "a\x00b"}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "meta": {"a": ["ok", {"b": "\x00"}]}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "meta": {"\x00": 1}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", **UPSERT, "meta": {"a": [1, {"b": None}]}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", "params": {**UPSERT, "evidence_refs": ["x\x00"]}}),
    (EXECUTE, {"tool": "backlog_tool", "action": "upsert", "params": UPSERT}),
    *[(EXECUTE, example) for example in RUNBOOK_EXAMPLES],
    ("/v1/backlog/items", {**UPSERT, "title": "\u2066hidden\u2069"}),
    ("/v1/backlog/items", {**UPSERT, "dry_run": "true"}),
    ("/v1/backlog/items", {**UPSERT, "dry_run": True}),
    ("/v1/backlog/cleanup", {"retention_days": False}),
    ("/v1/signals", {"signals": [], "dry_run": 1}),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The served document (the same for every app: built once for the module)."""
    return dict(route_table_app().openapi())


@pytest.mark.parametrize(("path", "body"), SAME_VERDICT)
def test_the_document_is_as_strict_as_the_server(document: dict[str, Any], client: TestClient, path: str,
                                                 body: Any) -> None:
    """Issue 23: the document refused nothing the server refuses (``{}`` as a webhook, unknown params)."""
    response = client.post(path, json=body, headers=headers_for("admin"))
    assert response.status_code != 500, response.text
    accepted = response.status_code != 422
    assert body_is_valid(document, path, body) == accepted, (response.status_code, response.text)


def test_execute_body_is_described_per_action(spec: dict[str, Any]) -> None:
    body = spec["paths"][EXECUTE]["post"]["requestBody"]["content"]["application/json"]["schema"]
    served = {(s.tool, s.action) for s in build_registry().specs()}
    described = {(b["properties"]["tool"]["const"], b["properties"]["action"]["const"]) for b in body["anyOf"]}
    assert described == served and len(body["anyOf"]) == 2 * len(served)
    assert all(branch["additionalProperties"] is False for branch in body["anyOf"])
    title = spec["components"]["schemas"]["params.backlog_tool.upsert"]["properties"]["title"]
    assert "\\x00" in title["pattern"] and "\\u202a" in title["pattern"]  # the NUL and bidi rules, stated


# One app for the whole run (built at collection, as schemathesis' pytest integration wants): state
# accumulates across examples, which exercises reads over whatever earlier examples wrote.
FUZZ_APP = route_table_app()
fuzz = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance]


@fuzz.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_schemathesis(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=headers_for("admin"), checks=CHECKS)
