"""The one error→status map, and every error's shape: ``{"error": "...", ...}``, no stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router import errors
from services.router.api.errors import RequestTooLarge, status_for
from services.router.app import create_app
from services.router.app.middleware import MAX_BODY_BYTES
from services.router.clock import FixedClock
from services.router.errors import BacklogError, StoreUnavailable
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import headers_for, make_rbac, make_runtime, new_item

ADMIN = headers_for("admin")
EXPECTED_STATUS: dict[type[BacklogError], int] = {
    errors.ValidationFailed: 422, errors.NotFound: 404, errors.Conflict: 409, errors.TransitionRefused: 409,
    errors.DigestMissing: 409, errors.PolicyInvalid: 500, errors.SettingsInvalid: 500,
    errors.AuthError: 401, errors.Forbidden: 403,
    errors.StoreUnavailable: 503, RequestTooLarge: 413, errors.RateLimited: 429,
}


def subclasses(cls: type[BacklogError]) -> set[type[BacklogError]]:
    found = set(cls.__subclasses__())
    return found.union(*(subclasses(c) for c in found)) if found else found


def test_every_error_class_has_a_decided_status() -> None:
    """A new error class fails here until someone decides its status in api/errors.py."""
    assert subclasses(BacklogError) - set(EXPECTED_STATUS) == set()
    for cls, status in EXPECTED_STATUS.items():
        assert status_for(cls("x")) == status, cls


class BrokenStore(MemoryBacklogStore):
    """Fails the way a bug or an outage would, to see what the API makes of it."""

    failure: Exception = RuntimeError("boom: secret internals at /srv/db")

    def dashboard(self, env: str | None = None) -> dict[str, Any]:
        raise self.failure


def client_over(store: MemoryBacklogStore, clock: FixedClock, tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(make_runtime(store, clock, tmp_path, **settings), make_rbac()))


def test_unexpected_exception_is_a_bare_500_with_the_request_id(
    clock: FixedClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_over(BrokenStore(clock=clock), clock, tmp_path)
    response = client.get("/v1/backlog/dashboard", headers=ADMIN)
    assert response.status_code == 500
    body = response.json()
    assert body == {"error": "internal error", "request_id": response.headers["x-request-id"]}
    assert "boom" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "backlog.http" and r.exc_info]
    assert logged and "boom" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_store_unavailable_is_503_with_retry_after(clock: FixedClock, tmp_path: Path) -> None:
    store = BrokenStore(clock=clock)
    store.failure = StoreUnavailable("postgres is unreachable and the fallback is not writable")
    response = client_over(store, clock, tmp_path).get("/v1/backlog/dashboard", headers=ADMIN)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {"error": "postgres is unreachable and the fallback is not writable"}


def test_invalid_policy_is_500_with_the_message(clock: FixedClock, tmp_path: Path) -> None:
    client = client_over(MemoryBacklogStore(clock=clock), clock, tmp_path,
                         BACKLOG_POLICY_PATH=tmp_path / "missing.yml")
    response = client.post("/v1/backlog/items", headers=ADMIN,
                           json={"env": "prod", "service": "gw", "category": "x", "title": "T"})
    assert response.status_code == 500
    assert response.json()["error"] == f"{tmp_path / 'missing.yml'}: policy file not found"


def test_not_found_and_refused_transition(client: TestClient) -> None:
    missing = client.get("/v1/backlog/items/bl_0123456789abcdef", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no backlog item bl_0123456789abcdef", "id": "bl_0123456789abcdef"}
    item = new_item(client)
    assert client.post(f"/v1/backlog/items/{item['id']}/status", json={"status": "done"}, headers=ADMIN).is_success
    refused = client.post(f"/v1/backlog/items/{item['id']}/status", json={"status": "blocked"}, headers=ADMIN)
    assert refused.status_code == 409
    assert "open" in refused.json()["error"]  # names the allowed move
    unknown = client.post("/v1/tools/execute", json={"tool": "backlog_tool", "action": "nope"}, headers=ADMIN)
    assert unknown.status_code == 404 and unknown.json()["field"] == "action"


@pytest.mark.parametrize("url, body, field", [
    ("/v1/backlog/items", {"env": "prod", "service": "gw", "category": "x", "title": "T", "bogus": 1}, "bogus"),
    ("/v1/backlog/items", {"env": "Prod!", "service": "gw", "category": "x", "title": "T"}, "env"),
    ("/v1/backlog/items", {"env": "prod", "service": "gw", "category": "x", "title": "T" * 201}, "title"),
    ("/v1/backlog/items", {"env": "prod", "service": "gw", "category": "x"}, "title"),
    ("/v1/backlog/cleanup", {"retention_days": -1}, "retention_days"),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", "bogus": 1}, "bogus"),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", "params": {"limit": 501}}, "limit"),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", "params": {}, "env": "prod"}, "params"),
    ("/v1/tools/execute", {"action": "list"}, "tool"),
])
def test_bad_input_is_422_naming_the_field(client: TestClient, url: str, body: dict[str, Any], field: str) -> None:
    response = client.post(url, json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: ") or field == "params"


def test_bad_query_and_path_and_json(client: TestClient) -> None:
    unknown = client.get("/v1/backlog/items", params={"bogus": "1"}, headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["field"] == "bogus"
    over = client.get("/v1/backlog/items", params={"limit": 501}, headers=ADMIN)
    assert over.status_code == 422 and over.json()["field"] == "limit"
    bad_id = client.get("/v1/backlog/items/not-an-id", headers=ADMIN)
    assert bad_id.status_code == 422 and bad_id.json()["field"] == "item_id"
    bad_json = client.post("/v1/backlog/items", content=b"{nope", headers={**ADMIN, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json() == {
        "error": "body: invalid JSON", "field": "body",
        "errors": [{"field": "body", "in": "body", "message": "invalid JSON", "type": "json_invalid"}],
    }


def test_oversized_body_is_413_before_parsing(client: TestClient, store: MemoryBacklogStore) -> None:
    big = b'{"env": "prod", "service": "gw", "category": "x", "title": "T", "description": "' + b"x" * MAX_BODY_BYTES
    response = client.post("/v1/backlog/items", content=big, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": f"request body is over {MAX_BODY_BYTES} bytes", "limit_bytes": MAX_BODY_BYTES}

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(17):
            yield b" " * 65536

    chunked = client.post("/v1/tools/execute", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert client.get("/v1/backlog/items", headers=ADMIN).json()["items"] == []


def test_a_body_at_the_limit_is_parsed(client: TestClient) -> None:
    body = b'{"tool": "backlog_tool", "action": "list"}'
    padded = body + b" " * (MAX_BODY_BYTES - len(body))
    response = client.post("/v1/tools/execute", content=padded, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 200


def test_unknown_route_and_method(as_role: Callable[..., Any]) -> None:
    assert as_role("admin", "get", "/v1/nope").json() == {"error": "not found"}
    wrong = as_role("admin", "delete", "/v1/backlog/items")
    assert wrong.status_code == 405 and wrong.json() == {"error": "method not allowed"}


def test_every_error_response_has_the_shape(client: TestClient, as_role: Callable[..., Any]) -> None:
    responses = [
        client.get("/v1/backlog/items"),
        as_role("readonly", "post", "/v1/backlog/cleanup", json={}),
        as_role("admin", "get", "/v1/backlog/items/bl_0123456789abcdef"),
        as_role("admin", "get", "/v1/backlog/items", params={"limit": 0}),
    ]
    for r in responses:
        assert r.status_code >= 400 and isinstance(r.json()["error"], str) and r.json()["error"]
        assert r.headers["content-type"] == "application/json"
        assert "Traceback" not in r.text


def test_request_ids(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="backlog.http")
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-abc-123"})
    assert kept.headers["x-request-id"] == "trace-abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert replaced.headers["x-request-id"] != "bad id\twith junk" and len(replaced.headers["x-request-id"]) == 32
    lines = [r.getMessage() for r in caplog.records if r.name == "backlog.http"]
    assert lines[0].startswith("request_id=trace-abc-123 method=GET route=/healthz status=200 duration_ms=")
