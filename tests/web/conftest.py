"""Web fixtures: the real app over a memory store, a fixed clock and seeded data, with the shipped
``config/rbac.yml`` accounts and random per-session keys (from ``tests/api/conftest``).

Pages are fetched over ``https://testserver``: sign-in over plain HTTP is accepted only on
loopback, and TestClient's peer is not a loopback address.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import KEYS, make_rbac, make_runtime
from tests.web.seed import Seeded, seed

BASE = "https://testserver"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def require(executable: str, what: str) -> str:
    """The path of a system tool the test needs: skipped with the reason locally, a failure under CI."""
    found = shutil.which(executable) or (executable if os.access(executable, os.X_OK) else None)
    if found:
        return found
    message = f"{what} ({executable}) is not installed; run ops/scripts/install_test_deps.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def runtime(clock: FixedClock, tmp_path: Path) -> Runtime:
    store = MemoryBacklogStore(clock=clock)
    return make_runtime(store, clock, tmp_path, BACKLOG_STATE_DIR=tmp_path / "state")


@pytest.fixture
def seeded(runtime: Runtime, tmp_path: Path) -> Seeded:
    return seed(runtime, tmp_path / "state")


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime, make_rbac())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as test_client:
        yield test_client


def sign_in(client: TestClient, account: str) -> str:
    """Sign in as ``account``; returns the session's CSRF token (from the page's meta tag)."""
    response = client.post("/login", data={"api_key": KEYS[account], "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/")
    assert page.status_code == 200, page.text
    match = CSRF_META.search(page.text)
    assert match is not None
    return match.group(1)
