"""API keys, the acting identity, and config/rbac.yml."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from services.router.access.rbac import RbacConfig, ServiceAccount, load_rbac, read_accounts
from services.router.errors import PolicyInvalid
from services.router.tools.registry import grants
from tests.api.conftest import KEYS, RBAC_FILE, WRONG_KEY, headers_for, new_item

ITEMS = "/v1/backlog/items"


def test_401_body_is_identical_for_missing_unknown_and_malformed_keys(client: TestClient) -> None:
    attempts: list[dict[str, str]] = [
        {},
        {"X-API-Key": WRONG_KEY},
        {"Authorization": f"Bearer {WRONG_KEY}"},
        {"Authorization": f"Basic {KEYS['admin']}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": KEYS["admin"], "Authorization": f"Bearer {KEYS['readonly']}"},  # two identities
        {"X-API-Key": "x" * 5000},
    ]
    responses = [client.get(ITEMS, headers=h) for h in attempts]
    assert {r.status_code for r in responses} == {401}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["www-authenticate"] for r in responses}) == 1
    assert responses[0].json() == {
        "error": "missing or unknown API key; send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    }


def test_bearer_and_x_api_key_both_work(client: TestClient) -> None:
    assert client.get(ITEMS, headers={"Authorization": f"Bearer {KEYS['readonly']}"}).status_code == 200
    assert client.get(ITEMS, headers={"authorization": f"bearer {KEYS['readonly']}"}).status_code == 200
    assert client.get(ITEMS, headers={"X-API-Key": KEYS["readonly"]}).status_code == 200
    same = {"X-API-Key": KEYS["oncall"], "Authorization": f"Bearer {KEYS['oncall']}"}
    assert client.get(ITEMS, headers=same).status_code == 200


@pytest.mark.parametrize("name", ["api_key", "key", "token", "access_token", "API_KEY", "apikey"])
def test_key_in_query_string_is_refused(client: TestClient, name: str) -> None:
    response = client.get(ITEMS, params={name: KEYS["admin"]}, headers=headers_for("admin"))
    assert response.status_code == 401
    assert "query string" in response.json()["error"]
    assert KEYS["admin"] not in response.text
    assert client.get("/healthz", params={name: "x"}).status_code == 401  # public paths too


def test_unknown_routes_and_malformed_requests_are_401_without_a_key(client: TestClient) -> None:
    assert client.get("/v1/nope").status_code == 401
    assert client.post(ITEMS, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 401
    assert client.get("/v1/nope", headers=headers_for("readonly")).status_code == 404


def test_public_routes_need_no_key(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_actor_comes_from_the_key(client: TestClient, as_role: Callable[..., Any]) -> None:
    item = new_item(client)
    response = as_role("oncall", "post", f"{ITEMS}/{item['id']}/comments", json={"message": "mine"})
    assert response.status_code == 200
    assert response.json()["event"]["actor"] == "oncall"


@pytest.mark.parametrize("where", ["top", "params", "flat-rest"])
def test_agent_id_that_differs_from_the_key_is_refused(as_role: Callable[..., Any], where: str) -> None:
    if where == "top":
        body: dict[str, Any] = {"tool": "backlog_tool", "action": "list", "agent_id": "scheduler"}
    elif where == "params":
        body = {"tool": "backlog_tool", "action": "list", "params": {"agent_id": "scheduler"}}
    else:
        body = {"tool": "backlog_tool", "action": "dashboard", "env": "prod", "agent_id": "admin"}
    response = as_role("oncall", "post", "/v1/tools/execute", json=body)
    assert response.status_code == 403
    assert response.json()["field"] == "agent_id"


def test_agent_id_equal_to_the_key_is_accepted(client: TestClient, as_role: Callable[..., Any]) -> None:
    body = {"tool": "backlog_tool", "action": "cleanup", "retention_days": 180, "agent_id": "scheduler"}
    assert as_role("scheduler", "post", "/v1/tools/execute", json=body).status_code == 200
    upsert = {"env": "prod", "service": "gateway", "category": "x", "title": "T", "agent_id": "oncall"}
    response = as_role("oncall", "post", ITEMS, json=upsert)
    assert response.status_code == 200 and response.json()["event"]["actor"] == "oncall"
    assert as_role("oncall", "post", ITEMS, json={**upsert, "agent_id": "admin"}).status_code == 403


def test_keys_never_reach_the_logs(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client.get(ITEMS, headers=headers_for("admin"))
    client.get(ITEMS, headers={"X-API-Key": WRONG_KEY})
    client.get(ITEMS, params={"api_key": KEYS["oncall"]})
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # the test client's own
    logged = "\n".join(r.getMessage() for r in server)
    assert "request_id=" in logged
    for key in (*KEYS.values(), WRONG_KEY):
        assert key not in logged


# -- entitlements and config/rbac.yml ------------------------------------------------------------
def test_admin_implies_write_implies_read_within_an_area() -> None:
    assert grants({"tools.backlog.admin"}, "tools.backlog.read")
    assert grants({"tools.backlog.write"}, "tools.backlog.read")
    assert not grants({"tools.backlog.write"}, "tools.backlog.admin")
    assert not grants({"tools.risk.admin"}, "tools.backlog.read")
    assert not grants(set(), "tools.backlog.read")


def test_shipped_rbac_file_has_the_runbook_accounts() -> None:
    accounts = {a.name: a for a in read_accounts(RBAC_FILE)}
    assert accounts["scheduler"].entitlements == {"tools.backlog.admin", "tools.pressure.write", "tools.risk.write",
                                                     "tools.tracker.admin"}
    assert accounts["scheduler"].key_env == "SCHEDULER_API_KEY"
    assert accounts["admin"].key_env == "BACKLOG_ADMIN_API_KEY"
    assert accounts["readonly"].entitlements >= {"tools.backlog.read"}
    assert accounts["oncall"].entitlements >= {"tools.backlog.write"}
    assert accounts["alertmanager"].entitlements == {"tools.signals.write"}
    raw = yaml.safe_load(RBAC_FILE.read_text())["accounts"]
    assert all(set(spec) <= {"key_env", "entitlements", "description"} for spec in raw.values())  # no key material


def test_accounts_whose_variable_is_unset_are_disabled() -> None:
    rbac = load_rbac(RBAC_FILE, environ={"SCHEDULER_API_KEY": KEYS["scheduler"], "ONCALL_API_KEY": "  "})
    assert [a.name for a in rbac.enabled] == ["scheduler"]
    assert {a.name for a in rbac.disabled} == {"admin", "oncall", "readonly", "alertmanager"}
    assert rbac.identify(KEYS["scheduler"]) is not None
    assert rbac.identify(KEYS["admin"]) is None


@pytest.mark.parametrize("bad", ["changeme", "changeme-changeme-changeme", "short-key-123", "aaaaaaaaaaaaaaaaaaaa",
                                 "example-api-key-0123456789", "has space in the middle 12345", "12121212121212121212"])
def test_placeholder_and_short_keys_refuse_to_start(bad: str) -> None:
    with pytest.raises(PolicyInvalid) as err:
        load_rbac(RBAC_FILE, environ={"SCHEDULER_API_KEY": bad})
    assert "SCHEDULER_API_KEY" in err.value.message
    assert bad not in err.value.message


def test_the_same_key_for_two_accounts_is_refused() -> None:
    with pytest.raises(PolicyInvalid, match="same API key"):
        load_rbac(RBAC_FILE, environ={"SCHEDULER_API_KEY": KEYS["admin"], "ONCALL_API_KEY": KEYS["admin"]})


@pytest.mark.parametrize("text, key", [
    ("accounts: {x: {key_env: X_KEY, entitlements: [tools.backlog.root]}}", "accounts.x.entitlements.0"),
    ("accounts: {x: {key_env: X_KEY, entitlements: [tools.backlog.read], key: abc}}", "accounts.x.key"),
    ("accounts: {x: {key_env: lower, entitlements: [tools.backlog.read]}}", "accounts.x.key_env"),
    ("accounts: {}", "accounts"),
])
def test_invalid_rbac_file_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "rbac.yml"
    path.write_text(text)
    with pytest.raises(PolicyInvalid) as err:
        read_accounts(path)
    assert str(path) in err.value.message
    assert key in err.value.details["keys"]


def test_identify_compares_against_every_key() -> None:
    accounts = [ServiceAccount(n, frozenset({"tools.backlog.read"}), f"{n.upper()}_KEY") for n in ("a", "b", "c")]
    rbac = RbacConfig(accounts, {"a": KEYS["admin"], "b": KEYS["oncall"], "c": KEYS["readonly"]})
    assert [rbac.identify(KEYS[k]).name for k in ("admin", "oncall", "readonly")] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert rbac.identify(WRONG_KEY) is None
