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
    response_schema_conformance,
    status_code_conformance,
)

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
            if path == "/v1/trackers/{name}/webhook":  # the tracker's webhook secret, not an API key
                assert op["security"] == [] and op["x-authentication"] == "tracker webhook secret"
                continue
            assert op["security"] == [{"ApiKey": []}, {"Bearer": []}], (method, path)
            assert "x-entitlement" in op or "x-entitlements" in op or "x-action" in op, (method, path)
    assert spec["paths"]["/v1/backlog/cleanup"]["post"]["x-entitlement"] == "tools.backlog.admin"
    assert spec["paths"]["/v1/tools/execute"]["post"]["x-entitlements"]["backlog_tool.upsert"] == "tools.backlog.write"


# One app for the whole run (built at collection, as schemathesis' pytest integration wants): state
# accumulates across examples, which exercises reads over whatever earlier examples wrote.
FUZZ_APP = route_table_app()
fuzz = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@fuzz.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_schemathesis(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=headers_for("admin"), checks=CHECKS)
