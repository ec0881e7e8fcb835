"""A misspelt env (``prdo``) must not look like a healthy, empty one — on the API, the web page and the CLI.

An env is known when it has items, signals, a section in the latest digest, or the policy names it
(``envs:`` or ``alerts.envs``); a fresh install's ``prod`` is known through ``alerts.envs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.router.app import create_app
from services.router.cli import app as cli
from services.router.clock import FixedClock
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import KEYS, REPO, make_rbac, make_runtime
from tests.generation.builders import platform, svc, write_json
from tests.signals.builders import incident
from tests.web.conftest import BASE, sign_in

PRDO = "no items, signals or digest for env 'prdo'; known envs: prod, staging"
POLICY = "alerts: {envs: [prod]}\n"
H = {"X-API-Key": KEYS["readonly"]}


@pytest.fixture
def runtime(clock: FixedClock, tmp_path: Path) -> Iterator[Runtime]:
    (tmp_path / "backlog_policy.yml").write_text(POLICY)
    rt = make_runtime(MemoryBacklogStore(clock=clock), clock, tmp_path, BACKLOG_BACKEND="memory")
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, make_rbac()), base_url=BASE) as test_client:
        yield test_client


def add_item(runtime: Runtime, env: str) -> None:
    runtime.execute("t", "backlog_tool", "upsert", {"env": env, "service": "gateway", "category": "security",
                                                   "title": "Patch it"})


def test_a_fresh_install_shows_an_empty_prod_without_a_warning(client: TestClient) -> None:
    board = client.get("/v1/backlog/dashboard?env=prod", headers=H).json()
    assert (board["total"], board["known_env"]) == (0, True) and "warning" not in board


def test_an_unknown_env_answers_with_known_env_false_and_the_known_envs(client: TestClient, runtime: Runtime) -> None:
    add_item(runtime, "staging")
    board = client.get("/v1/backlog/dashboard?env=prdo", headers=H)
    assert board.status_code == 200, "an empty answer is still a true answer"
    assert (board.json()["total"], board.json()["known_env"], board.json()["warning"]) == (0, False, PRDO)
    items = client.get("/v1/backlog/items?env=prdo", headers=H).json()
    assert (items["items"], items["known_env"], items["warning"]) == ([], False, PRDO)
    assert client.get("/v1/backlog/items?env=staging", headers=H).json()["known_env"] is True
    assert "known_env" not in client.get("/v1/backlog/dashboard", headers=H).json(), "all envs: nothing to check"


def test_signals_a_digest_section_or_the_policy_make_an_env_known(
    client: TestClient, runtime: Runtime, tmp_path: Path,
) -> None:
    runtime.execute("t", "signals_tool", "ingest", {"signals": [incident(env="qa")]})
    write_json(tmp_path / "reports" / "platform" / "2026-W48.json", platform("2026-W48", {"perf": [svc("a")]}))
    write_json(tmp_path / "reports" / "platform" / "2026-W50.json",  # after the clock's week: not the latest yet
               platform("2026-W50", {"future": [svc("a")]}))
    (tmp_path / "backlog_policy.yml").write_text("envs: [dr]\n" + POLICY)
    known = {env: client.get(f"/v1/backlog/dashboard?env={env}", headers=H).json() for env in
             ("qa", "perf", "dr", "future")}
    assert {env: board["known_env"] for env, board in known.items()} == {
        "qa": True, "perf": True, "dr": True, "future": False}
    assert known["future"]["warning"] == "no items, signals or digest for env 'future'; known envs: dr, perf, prod, qa"


def test_the_web_dashboard_shows_the_warning_instead_of_the_green_state(client: TestClient, runtime: Runtime) -> None:
    add_item(runtime, "staging")
    sign_in(client, "readonly")
    page = client.get("/?env=prdo").text
    assert PRDO.replace("'", "&#39;") in page and "Nothing is overdue" not in page
    assert 'data-testid="no-alerts"' not in page
    assert "Nothing is overdue" in client.get("/?env=prod").text


def test_the_cli_prints_the_warning_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("REPO_ROOT", str(REPO))
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_REPORTS_DIR", str(tmp_path / "reports"))
    (tmp_path / "policy.yml").write_text(POLICY)
    monkeypatch.setenv("BACKLOG_POLICY_PATH", str(tmp_path / "policy.yml"))
    for command in (["dashboard", "--env", "prdo"], ["list", "--env", "prdo", "--json"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0 and result.stderr == (
            "warning: no items, signals or digest for env 'prdo'; known envs: prod\n"), result.stderr
    assert CliRunner().invoke(cli, ["dashboard", "--env", "prod"]).stderr == ""
