"""API fixtures: an app over a memory store and a fixed clock, with the shipped ``config/rbac.yml``
accounts and a random key per account (generated per test session, never stored)."""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.router.access.rbac import RbacConfig, read_accounts
from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.memory import MemoryBacklogStore
from tests.conftest import NOW

REPO = Path(__file__).resolve().parents[2]
RBAC_FILE = REPO / "config" / "rbac.yml"
ACCOUNTS = ("admin", "scheduler", "oncall", "readonly", "alertmanager")
KEYS: dict[str, str] = {name: secrets.token_urlsafe(32) for name in ACCOUNTS}
WRONG_KEY = secrets.token_urlsafe(32)
# The callers of the authorization matrix (DESIGN §9 / issue 5).
ROLES = ("no key", "wrong key", "readonly", "oncall", "scheduler", "admin")


def headers_for(role: str) -> dict[str, str]:
    if role == "no key":
        return {}
    if role == "wrong key":
        return {"X-API-Key": WRONG_KEY}
    if role == "scheduler":  # the governance runner's form
        return {"Authorization": f"Bearer {KEYS[role]}"}
    return {"X-API-Key": KEYS[role]}


def make_rbac() -> RbacConfig:
    return RbacConfig(read_accounts(RBAC_FILE), KEYS, source=str(RBAC_FILE))


# The API tests' own policy, so they do not depend on edits to config/backlog_policy.yml.
TEST_POLICY = "defaults: {retention_days: 180, max_items_per_run: 50}\nownership: {default_owner: oncall}\n"


def make_runtime(store: BacklogStore, clock: FixedClock, tmp_path: Path, **settings: Any) -> Runtime:
    policy = tmp_path / "backlog_policy.yml"
    if not policy.exists():
        policy.write_text(TEST_POLICY)
    values: dict[str, Any] = {"REPO_ROOT": REPO, "BACKLOG_REPORTS_DIR": tmp_path / "reports",
                              "BACKLOG_POLICY_PATH": policy, "BACKLOG_STATE_DIR": tmp_path / "state",
                              "BACKLOG_JSONL_DIR": tmp_path / "backlog", **settings}
    return build_runtime(Settings(**values), clock=clock, store=store)


def route_table_app() -> FastAPI:
    """An app built only to read its route table (at collection time, for parametrize)."""
    clock = FixedClock(NOW)
    workdir = Path(tempfile.mkdtemp(prefix="backlog-api-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return create_app(make_runtime(MemoryBacklogStore(clock=clock), clock, workdir), make_rbac())


@pytest.fixture
def store(clock: FixedClock) -> MemoryBacklogStore:
    return MemoryBacklogStore(clock=clock)


@pytest.fixture
def runtime(store: MemoryBacklogStore, clock: FixedClock, tmp_path: Path) -> Runtime:
    return make_runtime(store, clock, tmp_path)


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime, make_rbac())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def as_role(client: TestClient) -> Callable[..., Any]:
    """``as_role("oncall", "post", url, json=…)`` → response."""

    def call(role: str, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**headers_for(role), **kwargs.pop("headers", {})}
        return client.request(method.upper(), url, headers=headers, **kwargs)

    return call


def new_item(client: TestClient, key: str = "k1", **fields: Any) -> dict[str, Any]:
    body = {"env": "prod", "service": "gateway", "category": "arch_review", "title": "Review gateway",
            "dedupe_key": key, **fields}
    response = client.post("/v1/backlog/items", json=body, headers=headers_for("admin"))
    assert response.status_code == 200, response.text
    return dict(response.json()["item"])
