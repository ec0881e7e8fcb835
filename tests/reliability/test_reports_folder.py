"""Path traversal and planted symlinks in the reports folder, through the running router.

Digests live in ``{reports}/platform/YYYY-Www.json`` and ``{reports}/risk/YYYY-MM-DD.json``.
Nothing a request carries names a file (``env`` is a slug), and a symlink planted in the folder
is never followed out of it: generation refuses it with an error naming the file, a digest
run replaces the link instead of reading or writing its target. No 5xx, nothing stored from a
refused request, no file outside the data folders read or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.domain.queries import ItemQuery
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import KEYS, make_rbac, make_runtime
from tests.generation.builders import platform, svc

ADMIN = {"X-API-Key": KEYS["admin"]}
SECRET_SERVICE = "outside-secret-svc"


@pytest.fixture
def store(clock: FixedClock) -> MemoryBacklogStore:
    return MemoryBacklogStore(clock=clock)


@pytest.fixture
def client(store: MemoryBacklogStore, clock: FixedClock, tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir()
    app = create_app(make_runtime(store, clock, tmp_path / "data"), make_rbac())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "reports" / "platform"
    folder.mkdir(parents=True)
    (folder / "2026-W47.json").write_text(json.dumps(platform("2026-W47", {"prod": [svc("gateway", 90, "critical",
                                                                                          open_critical_vulns=3)]})))
    return folder.parent


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A valid digest outside the data folders, naming a service that must never show up."""
    folder = tmp_path / "outside"
    folder.mkdir()
    path = folder / "2026-W48.json"
    path.write_text(json.dumps(platform("2026-W48", {"prod": [svc(SECRET_SERVICE, 95, "critical",
                                                                  open_critical_vulns=9)]})))
    return path


def fingerprint(folder: Path) -> dict[str, tuple[str, float]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def items(store: MemoryBacklogStore) -> list[dict[str, object]]:
    return store.list(ItemQuery(limit=500)).items


@pytest.mark.parametrize("target", ["outside digest", "/etc/passwd", "a loop"])
def test_a_symlink_planted_as_the_newest_digest_is_refused(client: TestClient, store: MemoryBacklogStore,
                                                           reports: Path, outside: Path, tmp_path: Path,
                                                           target: str) -> None:
    link = reports / "platform" / "2026-W48.json"
    if target == "a loop":
        os.symlink(link, link)
    else:
        os.symlink(outside if target == "outside digest" else Path(target), link)
    before = fingerprint(tmp_path / "outside")
    response = client.post("/v1/backlog/generate/weekly?env=prod", headers=ADMIN)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"].startswith("platform/2026-W48.json: refused: ")
    assert body["file"] == "platform/2026-W48.json"
    for leaked in (SECRET_SERVICE, str(outside), "root:", str(tmp_path)):
        assert leaked not in response.text
    assert items(store) == []
    assert fingerprint(tmp_path / "outside") == before


def test_the_platform_folder_as_a_symlink_out_of_the_reports_folder_is_refused(
        client: TestClient, store: MemoryBacklogStore, tmp_path: Path, outside: Path) -> None:
    reports = tmp_path / "data" / "reports"
    reports.mkdir(parents=True)
    os.symlink(outside.parent, reports / "platform")
    response = client.post("/v1/backlog/generate/weekly?env=prod", headers=ADMIN)
    assert response.status_code == 422
    assert "platform/ folder is a symlink out of the reports folder" in response.json()["error"]
    assert SECRET_SERVICE not in response.text and items(store) == []


def test_an_older_planted_symlink_does_not_matter(client: TestClient, store: MemoryBacklogStore, reports: Path,
                                                  outside: Path) -> None:
    os.symlink(outside, reports / "platform" / "2026-W40.json")
    response = client.post("/v1/backlog/generate/weekly?env=prod", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["digest"] == "platform/2026-W47.json"
    assert {i["service"] for i in items(store)} == {"gateway"}


@pytest.mark.parametrize("env", ["../../etc", "..", "%2e%2e%2f%2e%2e", "..%2F..%2Fetc", "prod%00", "%2Fetc%2Fpasswd",
                                 "/etc", "prod/../../x", "C:%5Cwindows", "prod%0a", "~root", "."])
def test_traversal_in_env_is_refused_everywhere(client: TestClient, store: MemoryBacklogStore, reports: Path,
                                                tmp_path: Path, env: str) -> None:
    before = fingerprint(tmp_path)
    responses = [
        client.post(f"/v1/backlog/generate/weekly?env={env}", headers=ADMIN),
        client.get(f"/v1/backlog/dashboard?env={env}", headers=ADMIN),
    ]
    from urllib.parse import unquote

    raw = unquote(env)
    for tool, action in [("backlog_tool", "auto_generate_weekly"), ("backlog_tool", "auto_generate_daily"),
                         ("architecture_pressure_tool", "digest"), ("architecture_pressure_tool", "latest"),
                         ("risk_history_tool", "digest")]:
        responses.append(client.post("/v1/tools/execute", json={"tool": tool, "action": action, "env": raw},
                                     headers=ADMIN))
    for response in responses:
        assert response.status_code == 422, (env, response.status_code, response.text)
        assert "root:" not in response.text
    assert items(store) == []
    assert fingerprint(tmp_path) == before  # nothing written anywhere, the reports folder included


def test_a_digest_run_replaces_a_planted_link_instead_of_following_it(client: TestClient, clock: FixedClock,
                                                                      reports: Path, outside: Path,
                                                                      tmp_path: Path) -> None:
    """Regression: the pressure digest merged the file a planted ``YYYY-Www.json`` link pointed to
    (a read outside the reports folder, its content copied into the new digest)."""
    link = reports / "platform" / "2026-W48.json"  # this week's name: the run merges into it
    os.symlink(outside, link)
    before = fingerprint(tmp_path / "outside")
    response = client.post("/v1/tools/execute", json={"tool": "architecture_pressure_tool", "action": "digest"},
                           headers=ADMIN)
    assert response.status_code == 200, response.text
    assert not link.is_symlink() and link.is_file()
    assert SECRET_SERVICE not in link.read_text() and SECRET_SERVICE not in response.text
    assert fingerprint(tmp_path / "outside") == before
