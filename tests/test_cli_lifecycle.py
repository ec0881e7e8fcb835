"""``backlog accept`` / ``unaccept`` and what the CLI shows of an accepted risk and of people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("REPO_ROOT", str(REPO))
    monkeypatch.setenv("BACKLOG_NOW", "2026-11-26T12:00:00Z")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_accept_and_unaccept_through_the_cli(env: Path) -> None:
    code, out, _ = invoke("upsert", "--env", "prod", "--service", "gateway", "--category", "security",
                          "--title", "Patch CVE-2026-1", "--priority", "P0", "--due-date", "2026-11-20", "--json")
    item_id = json.loads(out)["item"]["id"]
    assert invoke("accept", item_id, "--until", "2026-12-01")[0] == 2  # --reason is required
    code, _, err = invoke("accept", item_id, "--until", "2026-11-01", "--reason", "too late")
    assert code == 4 and "error: until: 2026-11-01 is not in the future" in err
    code, _, err = invoke("accept", item_id, "--until", "1 Dec", "--reason", "x")
    assert code == 2 and "--until must be YYYY-MM-DD" in err
    code, out, _ = invoke("accept", item_id, "--until", "2026-12-01", "--reason", "vendor patch Monday")
    assert code == 0 and f"updated: {item_id} open" in out
    code, out, _ = invoke("dashboard", "--env", "prod", "--json")
    board = json.loads(out)
    assert (board["overdue_count"], board["accepted_count"]) == (0, 1)
    code, out, _ = invoke("dashboard", "--env", "prod")
    assert f"Accepted risks (1): {item_id} gateway/security until 2026-12-01" in out
    code, out, _ = invoke("show", item_id)
    assert "until 2026-12-01 by cli: vendor patch Monday" in out
    code, out, _ = invoke("unaccept", item_id, "--json")
    assert code == 0 and json.loads(out)["event"]["type"] == "unaccepted"
    code, out, _ = invoke("events", item_id, "--json")
    assert [e["type"] for e in json.loads(out)["events"]] == ["created", "accepted", "unaccepted"]
