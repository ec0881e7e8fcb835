"""/healthz, /readyz (including a degraded store) and /metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.router.api.routes_health import EnvIndex
from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.domain.queries import ItemQuery, Page
from services.router.errors import StoreUnavailable
from services.router.stores.base import BacklogStore, StoreStatus
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import headers_for, make_rbac, make_runtime, new_item


class DegradedStore(MemoryBacklogStore):
    """An Auto store serving from its JSONL fallback, as far as status() tells."""

    def status(self) -> StoreStatus:
        return StoreStatus(backend="jsonl", degraded=True)


class UnreachableStore(MemoryBacklogStore):
    def get(self, item_id: str) -> dict[str, Any] | None:
        raise ConnectionError("connection refused to postgres://user:hunter2@db/backlog")


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "backend": "memory", "degraded": False}


def test_readyz_reflects_a_degraded_store(clock: FixedClock, tmp_path: Path) -> None:
    client = TestClient(create_app(make_runtime(DegradedStore(clock=clock), clock, tmp_path), make_rbac()))
    ready = client.get("/readyz")
    assert ready.status_code == 200  # it still serves every request, from the fallback
    assert ready.json() == {"status": "degraded", "backend": "jsonl", "degraded": True}
    board = client.get("/v1/backlog/dashboard", headers=headers_for("readonly")).json()
    assert board["backend"] == "jsonl" and board["degraded"] is True
    assert samples(client)[("backlog_store_degraded", (("backend", "jsonl"),))] == 1.0


def test_readyz_is_503_when_the_store_is_unreachable(clock: FixedClock, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    client = TestClient(create_app(make_runtime(UnreachableStore(clock=clock), clock, tmp_path), make_rbac()))
    response = client.get("/readyz")
    assert response.status_code == 503 and "retry-after" in response.headers
    assert response.json() == {"error": "store unavailable", "backend": "memory"}
    assert "hunter2" not in response.text


def test_metrics_backlog_gauges(client: TestClient) -> None:
    new_item(client, "a", priority="P1", due_date="2026-01-01")
    new_item(client, "b", priority="P0")
    new_item(client, "c", env="staging", priority="P3")
    got = samples(client)
    assert got[("backlog_items", (("env", "prod"), ("status", "open")))] == 2.0
    assert got[("backlog_items", (("env", "prod"), ("status", "done")))] == 0.0
    assert got[("backlog_items", (("env", "staging"), ("status", "open")))] == 1.0
    assert got[("backlog_items_by_priority", (("env", "prod"), ("priority", "P1")))] == 1.0
    assert got[("backlog_items_by_priority", (("env", "staging"), ("priority", "P3")))] == 1.0
    assert got[("backlog_overdue_items", (("env", "prod"),))] == 1.0
    assert got[("backlog_overdue_items", (("env", "staging"),))] == 0.0
    assert got[("backlog_metrics_scrape_error", ())] == 0.0


def test_metrics_requests_by_route_template(client: TestClient) -> None:
    client.get("/v1/backlog/items/bl_0123456789abcdef", headers=headers_for("readonly"))
    client.get("/v1/backlog/items/bl_0123456789abcdee", headers=headers_for("readonly"))
    client.get("/v1/backlog/items")
    got = samples(client)
    by_id = ("backlog_http_requests_total", (("method", "GET"), ("route", "/v1/backlog/items/{item_id}"),
                                             ("status", "404")))
    assert got[by_id] == 2.0
    assert got[("backlog_http_requests_total", (("method", "GET"), ("route", "/v1/backlog/items"),
                                                ("status", "401")))] == 1.0
    bucket = ("backlog_http_request_duration_seconds_count",
              (("method", "GET"), ("route", "/v1/backlog/items/{item_id}"), ("status", "404")))
    assert got[bucket] == 2.0
    assert not any("bl_0123456789abcdef" in str(labels) for _, labels in got)


def test_each_app_has_its_own_registry(clock: FixedClock, tmp_path: Path, client: TestClient) -> None:
    client.get("/healthz")
    other = TestClient(create_app(make_runtime(MemoryBacklogStore(clock=clock), clock, tmp_path), make_rbac()))
    assert "/healthz" not in other.get("/metrics").text


def test_metrics_answer_when_the_store_fails(clock: FixedClock, tmp_path: Path) -> None:
    class Failing(MemoryBacklogStore):
        def dashboard(self, env: str | None = None) -> dict[str, Any]:
            raise StoreUnavailable("down")

    store = Failing(clock=clock)
    client = TestClient(create_app(make_runtime(store, clock, tmp_path), make_rbac()))
    new_item(client)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert samples(client)[("backlog_metrics_scrape_error", ())] == 1.0


def test_env_index_prefers_the_store_query_and_caches_the_scan(clock: FixedClock, store: MemoryBacklogStore,
                                                                client: TestClient) -> None:
    now = [0.0]
    class WithoutEnvs:
        """A store that cannot answer envs() itself: the index must page and cache."""

        def list(self, query: ItemQuery) -> Page:
            return store.list(query)

    index = EnvIndex(cast(BacklogStore, WithoutEnvs()), ttl_seconds=60, monotonic=lambda: now[0])
    assert index.envs() == []
    new_item(client, "a", env="prod")
    assert index.envs() == []  # cached
    now[0] = 61
    assert index.envs() == ["prod"]

    class WithEnvs(MemoryBacklogStore):
        def envs(self) -> list[str]:
            return ["z", "a"]

    assert EnvIndex(WithEnvs(clock=clock)).envs() == ["a", "z"]
