"""Hostile input against the running router (OWASP API Top 10, 2023): no 5xx, nothing stored
from a refused request, no key accepted where it should not be."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.domain.queries import ItemQuery
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import KEYS, make_rbac, make_runtime

ADMIN = {"X-API-Key": KEYS["admin"]}
GOOD_ITEM = {"env": "prod", "service": "gateway", "category": "security", "title": "Patch it"}


@pytest.fixture
def store(clock: FixedClock) -> MemoryBacklogStore:
    return MemoryBacklogStore(clock=clock)


@pytest.fixture
def client(store: MemoryBacklogStore, clock: FixedClock, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_runtime(store, clock, tmp_path), make_rbac())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def snapshot(store: MemoryBacklogStore) -> list[dict[str, Any]]:
    return store.list(ItemQuery(limit=500)).items


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + KEYS["admin"]},
        {"Authorization": "Token " + KEYS["admin"]},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"X-API-Key": "   "},
        {"X-API-Key": KEYS["admin"][:-1]},
        {"X-API-Key": KEYS["admin"] + "x"},
        {"X-API-Key": KEYS["admin"].upper()},
        {"X-API-Key": "x" * 10_000},
        {"Authorization": "Bearer " + "y" * 10_000},
        {"Authorization": f"Bearer {KEYS['readonly']}", "X-API-Key": KEYS["admin"]},  # two different keys
    ],
)
def test_bad_credentials_are_401_and_write_nothing(client: TestClient, store: MemoryBacklogStore,
                                                   headers: dict[str, str]) -> None:
    response = client.post("/v1/backlog/items", json=GOOD_ITEM, headers=headers)
    assert response.status_code == 401
    assert set(response.json()) >= {"error"}
    assert KEYS["admin"] not in response.text
    assert snapshot(store) == []


@pytest.mark.parametrize("name", ["api_key", "key", "token", "access_token", "X-API-Key"])
def test_key_in_query_string_is_refused_even_with_a_good_header(client: TestClient, name: str) -> None:
    response = client.get(f"/v1/backlog/dashboard?env=prod&{name}={KEYS['admin']}", headers=ADMIN)
    assert response.status_code == 401
    assert KEYS["admin"] not in response.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"id": "bl_000000000000000000000000"}, "id"), ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
     ({"status": "done"}, "status"), ({"rev": 99}, "rev"), ({"is_admin": True}, "is_admin")],
)
def test_mass_assignment_is_refused(client: TestClient, store: MemoryBacklogStore, extra: dict[str, Any],
                                    field: str) -> None:
    response = client.post("/v1/backlog/items", json={**GOOD_ITEM, **extra}, headers=ADMIN)
    assert response.status_code == 422
    assert field in json.dumps(response.json())
    assert snapshot(store) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [({**GOOD_ITEM, "title": "t" * 201}, "title"), ({**GOOD_ITEM, "description": "d" * 10_001}, "description"),
     ({**GOOD_ITEM, "env": "../../etc"}, "env"), ({**GOOD_ITEM, "service": "/etc/passwd"}, "service"),
     ({**GOOD_ITEM, "env": "prod\x00"}, "env"), ({**GOOD_ITEM, "category": "%2e%2e%2f"}, "category"),
     ({**GOOD_ITEM, "dedupe_key": "a b"}, "dedupe_key"), ({**GOOD_ITEM, "tags": ["x"] * 51}, "tags")],
)
def test_limits_and_hostile_names(client: TestClient, store: MemoryBacklogStore, body: dict[str, Any],
                                  field: str) -> None:
    response = client.post("/v1/backlog/items", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json().get("field", "").startswith(field) or field in json.dumps(response.json())
    assert snapshot(store) == []


def test_body_over_the_limit_is_413(client: TestClient, store: MemoryBacklogStore) -> None:
    response = client.post("/v1/backlog/items", content=b'{"title": "' + b"x" * (1024 * 1024 + 10) + b'"}',
                           headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert snapshot(store) == []


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_client_error(client: TestClient, store: MemoryBacklogStore, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"tool": "backlog_tool", "action": "upsert", "params": {"meta": {"x": ' + nested + "}}}"
    response = client.post("/v1/tools/execute", content=body.encode(),
                           headers={**ADMIN, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert snapshot(store) == []


@pytest.mark.parametrize("limit", ["10000", "0", "-1", "1e9", "abc"])
def test_page_size_is_bounded(client: TestClient, limit: str) -> None:
    response = client.get(f"/v1/backlog/items?limit={limit}", headers=ADMIN)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "path",
    ["/v1/backlog/items/..%2F..%2Fetc%2Fpasswd", "/v1/backlog/items/%2e%2e", "/v1/backlog/items/bl_%00",
     "/v1/backlog/dashboard?env=..%2F..", "/v1/backlog/dashboard?env=%2Fetc", "/v1/backlog/items?env=%00"],
)
def test_path_traversal_in_reads(client: TestClient, path: str) -> None:
    response = client.get(path, headers=ADMIN)
    assert response.status_code in (404, 422)
    assert "root:" not in response.text


def test_identity_spoofing_is_refused(client: TestClient, store: MemoryBacklogStore) -> None:
    body = {"tool": "backlog_tool", "action": "upsert", "agent_id": "admin", **GOOD_ITEM}
    response = client.post("/v1/tools/execute", json=body, headers={"X-API-Key": KEYS["oncall"]})
    assert response.status_code == 403
    assert snapshot(store) == []
