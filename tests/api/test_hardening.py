"""Issue 23, items 7-9: key names in the query string, keys never echoed or logged, and the small ones
(relative paths in tool results, nosniff, HEAD on the probes, bidirectional controls)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router.access.auth import redact_query_keys
from services.router.access.redaction import KeyRedactor
from tests.api.conftest import KEYS, headers_for, new_item

ADMIN = headers_for("admin")
KEY = KEYS["admin"]
UPSERT = {"env": "prod", "service": "gateway", "category": "arch_review", "title": "Review gateway"}


# -- 7. key names in the query string, normalised ---------------------------------------------------
@pytest.mark.parametrize("query", [
    "api_key[]=x", "api_key%20=x", "api.key=x", "api+key=x", "a=1;api_key=x", "API%5FKEY=x", "x-Api-Key=x",
    "api_key%00=x", "Access.Token=x", "env=prod&to-ken=x",
    "\uff4b\uff45\uff59=x",  # fullwidth "key"
])
def test_key_like_names_are_refused_however_they_are_spelled(client: TestClient, query: str) -> None:
    for path in ("/v1/backlog/items", "/healthz", "/login"):
        response = client.get(f"{path}?{query}", headers=ADMIN)
        assert response.status_code == 401, (path, query, response.text)
        assert "query string" in response.json()["error"]


def test_a_configured_key_as_a_query_value_or_name_is_refused(client: TestClient) -> None:
    for query in (f"q={KEY}", f"{KEY}=1", f"env=prod;x={KEY}", f"cursor={KEY.replace('-', '%2D')}"):
        response = client.get(f"/v1/backlog/items?{query}", headers=ADMIN)
        assert response.status_code == 401, (query, response.text)
        assert KEY not in response.text
    assert client.get("/v1/backlog/items?env=prod&limit=5", headers=ADMIN).status_code == 200


def test_the_access_log_redacts_normalised_names_and_configured_keys() -> None:
    redactor = KeyRedactor(lambda text: text == KEY)
    assert redact_query_keys("/x?api.key=s3cret&api_key[]=a;token%20=b&env=prod") == \
        "/x?api.key=***&api_key[]=***;token%20=***&env=prod"
    line = redact_query_keys(f"/v1/backlog/items/{KEY}?q={KEY}", redactor)
    assert KEY not in line and line == "/v1/backlog/items/***?q=***"


# -- 8. a configured key is never echoed or logged -------------------------------------------------------
def test_a_key_sent_as_the_request_id_is_neither_echoed_nor_logged(client: TestClient,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for headers in ({**ADMIN, "X-Request-ID": KEY}, {"X-Request-ID": KEYS["readonly"]}):
        response = client.get("/v1/backlog/items", headers=headers)
        assert response.headers["x-request-id"] not in KEYS.values()
        assert not any(k in response.text for k in KEYS.values())
    assert not any(k in caplog.text for k in KEYS.values())
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-0123456789"})
    assert kept.headers["x-request-id"] == "trace-0123456789"  # a real id is still kept


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/backlog/items", {**UPSERT, KEY: 1}),
    ("/v1/backlog/cleanup", {KEY: True}),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", KEY: 1}),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", "params": {"env": "prod"}, KEY: 1}),
    ("/v1/tools/execute", {"tool": "backlog_tool", "action": "list", "params": {KEY: {"a": 1}}}),
    ("/v1/signals", {"signals": [], KEY: []}),
])
def test_a_key_sent_as_an_unknown_parameter_is_not_echoed(client: TestClient, caplog: pytest.LogCaptureFixture,
                                                          path: str, body: dict[str, Any]) -> None:
    caplog.set_level(logging.INFO)
    response = client.post(path, json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert KEY not in response.text and "***" in response.text
    assert int(response.headers["content-length"]) == len(response.content)
    assert KEY not in caplog.text


def test_error_bodies_without_keys_are_sent_as_they_are(client: TestClient) -> None:
    response = client.post("/v1/backlog/items", json={**UPSERT, "colour": "red"}, headers=ADMIN)
    assert response.status_code == 422 and response.json()["field"] == "colour"


# -- 9. the small ones ----------------------------------------------------------------------------------
def test_tool_results_name_files_relative_to_the_repo_root(client: TestClient, tmp_path: Path) -> None:
    """The API runtime keeps its reports outside REPO_ROOT (``$BACKLOG_REPORTS_DIR``, in tmp)."""
    results = []
    for tool, action, params in (("architecture_pressure_tool", "digest", {"env": "prod"}),
                                 ("architecture_pressure_tool", "digest", {"env": "prod", "dry_run": True}),
                                 ("architecture_pressure_tool", "latest", {}),
                                 ("risk_history_tool", "digest", {"env": "prod"}),
                                 ("risk_history_tool", "digest", {"env": "prod", "dry_run": True})):
        response = client.post("/v1/tools/execute", json={"tool": tool, "action": action, **params}, headers=ADMIN)
        assert response.status_code == 200, response.text
        results.append(response.json()["result"])
    assert str(tmp_path) not in str(results) and str(Path.cwd()) not in str(results)
    assert results[0]["path"] == "$BACKLOG_REPORTS_DIR/platform/2026-W48.json"
    assert results[0]["md_path"] == "$BACKLOG_REPORTS_DIR/platform/2026-W48.md"
    assert results[3]["path"] == "$BACKLOG_REPORTS_DIR/risk/2026-11-26.json"
    assert all(not r["path"].startswith("/") for r in results)


def test_static_files_json_and_errors_carry_nosniff(client: TestClient) -> None:
    item = new_item(client)
    for response in (client.get("/static/app.css"), client.get("/static/app.js"), client.get("/openapi.json"),
                     client.get("/metrics"), client.get(f"/v1/backlog/items/{item['id']}", headers=ADMIN),
                     client.get("/v1/backlog/items"), client.get("/v1/nope", headers=ADMIN),
                     client.get("/docs/assets/docs.js")):
        assert response.headers["x-content-type-options"] == "nosniff", response.url


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head(client: TestClient, path: str) -> None:
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == client.get(path).headers["content-type"]


BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("control", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_bidirectional_controls_are_refused_naming_the_field(client: TestClient, control: str) -> None:
    item = new_item(client)
    text = f"approve {control}nimda{control} now"
    calls = [("/v1/backlog/items", {**UPSERT, "dedupe_key": "other", "title": text}, "title"),
             ("/v1/backlog/items", {**UPSERT, "dedupe_key": "other", "description": text}, "description"),
             (f"/v1/backlog/items/{item['id']}/comments", {"message": text}, "message"),
             (f"/v1/backlog/items/{item['id']}/status", {"status": "blocked", "message": text}, "message")]
    for url, body, field in calls:
        response = client.post(url, json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
        assert f"U+{ord(control):04X}" in response.json()["error"] and "bidirectional" in response.json()["error"]
    events = client.get(f"/v1/backlog/items/{item['id']}/events", headers=ADMIN).json()["events"]
    assert [e["type"] for e in events] == ["created"]  # nothing written
    assert len(client.get("/v1/backlog/items", headers=ADMIN).json()["items"]) == 1


@pytest.mark.parametrize("key", ["FMl4CLXdmiPq2emdOc2BViMS4", "-a_b-C.d9e8f7g6h5i4", "k'e\"y:w1th,punct;Q"])
def test_the_redactor_finds_keys_of_every_shape(key: str) -> None:
    redactor = KeyRedactor(lambda text: text == key)
    for text in (key, f"{key}: unknown field", f"params.{key}", f"flat: {key}, env", f"unknown tool '{key}'",
                 f"({key})"):
        assert key not in redactor.scrub(text), text
    assert redactor.scrub_json({key: [key, {"field": f"body.{key}"}]}) == {"***": ["***", {"field": "body.***"}]}
    assert redactor.scrub("nothing secret here at all") == "nothing secret here at all"
