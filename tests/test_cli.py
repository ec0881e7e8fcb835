"""The ``backlog`` CLI: tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_item_lifecycle_through_the_cli(env: Path) -> None:
    code, out, _ = invoke("upsert", "--env", "prod", "--service", "gateway", "--category", "security",
                          "--title", "Patch CVE-2026-1", "--priority", "P0", "--due-date", "2026-11-20",
                          "--evidence", "CVE-2026-1", "--json")
    assert code == 0
    created = json.loads(out)
    item_id = created["item"]["id"]
    assert created["action"] == "created"

    code, out, _ = invoke("status", item_id, "in_progress", "-m", "patching", "--json")
    assert code == 0 and json.loads(out)["item"]["status"] == "in_progress"
    assert invoke("comment", item_id, "rolled to canary")[0] == 0

    code, out, _ = invoke("events", item_id, "--json")
    assert [e["type"] for e in json.loads(out)["events"]] == ["created", "status_changed", "commented"]

    code, out, _ = invoke("dashboard", "--env", "prod", "--json")
    d = json.loads(out)
    assert (d["total"], d["overdue_count"], d["priority_counts"]["P0"]) == (1, 1, 1)
    code, out, _ = invoke("dashboard", "--env", "prod")
    assert code == 0 and "Overdue (1)" in out and "Patch CVE-2026-1" in out

    code, out, _ = invoke("list", "--env", "prod", "--overdue")
    assert code == 0 and item_id in out
    code, out, _ = invoke("show", item_id)
    assert code == 0 and "CVE-2026-1" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "bl_000000000000000000000000", "done"], 3, "error: no backlog item"),
        (["upsert", "--env", "PROD", "--service", "s", "--category", "c", "--title", "t"], 2, "error: env:"),
        (["upsert", "--env", "p", "--service", "s", "--category", "c", "--title", "t", "--due-date", "soon"], 2,
         "error: --due-date must be YYYY-MM-DD"),
        (["upsert", "--env", "p", "--service", "s", "--category", "c", "--title", "t", "--meta", "[1]"], 2,
         "error: --meta must be a JSON object"),
        (["list", "--status", "finished"], 2, "error: status:"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(env: Path, args: list[str], code: int, message: str) -> None:
    got_code, _out, err = invoke(*args)
    assert got_code == code
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_refused_transition(env: Path) -> None:
    _, out, _ = invoke("upsert", "--env", "p", "--service", "s", "--category", "c", "--title", "t", "--json")
    item_id = json.loads(out)["item"]["id"]
    invoke("status", item_id, "done")
    code, _, err = invoke("status", item_id, "blocked")
    assert code == 4 and err.strip() == "error: cannot move from done to blocked; allowed: open"


def test_runbook_compaction_snippet_works_verbatim(tmp_path: Path) -> None:
    """RUNBOOK §5, run from the repository root with the system python."""
    snippet = (
        "from services.router.backlog_store import JsonlBacklogStore\n"
        "s = JsonlBacklogStore()\n"
        "deleted = s.cleanup(retention_days=30)\n"
        "print(f'Removed {deleted} old items')\n"
    )
    data = tmp_path / "ops" / "backlog"
    run_env = {**os.environ, "BACKLOG_JSONL_DIR": str(data)}
    seed = ("from services.router.backlog_store import JsonlBacklogStore\n"
            "from services.router.domain.models import ItemInput\n"
            "from services.router.domain.enums import Status\n"
            "s = JsonlBacklogStore()\n"
            "r = s.upsert(ItemInput(env='prod', service='a', category='c', title='t'), actor='x')\n"
            "s.set_status(r.item['id'], Status.DONE, actor='x')\n")
    subprocess.run([sys.executable, "-c", seed], cwd=REPO, env={**run_env, "BACKLOG_NOW": "2026-01-01T00:00:00Z"},
                   check=True)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=run_env, check=True,
                         capture_output=True, text=True)
    assert out.stdout == "Removed 1 old items\n"


def test_trends_problems_and_edits_through_the_cli(env: Path) -> None:
    ids = []
    for week in ("2026-W47", "2026-W48"):
        code, out, _ = invoke("upsert", "--env", "prod", "--service", "gateway", "--category", "security",
                              "--title", f"Patch gateway ({week})", "--priority", "P0", "--due-date", "2026-11-20",
                              "--dedupe-key", f"platform_backlog:{week}:prod:gateway:security", "--json")
        ids.append(json.loads(out)["item"]["id"])
    code, out, _ = invoke("trends", "--env", "prod", "--weeks", "2", "--json")
    assert code == 0
    assert [(w["week"], w["opened"], w["overdue_at_end"]) for w in json.loads(out)["weeks"]] == [
        ("2026-W47", 0, 0), ("2026-W48", 2, 2)]
    code, out, _ = invoke("trends", "--env", "prod", "--weeks", "2")
    assert code == 0 and "2026-W48" in out and "P0 open at end" in out
    code, out, _ = invoke("problems", "--env", "prod", "--json")
    (row,) = json.loads(out)["problems"]
    assert (row["items"], row["first_week"], row["weeks_open"]) == (ids[::-1], "2026-W47", 2)
    code, out, _ = invoke("problems")
    assert code == 0 and "gateway" in out and "2026-W47" in out
    assert invoke("trends", "--weeks", "105")[0] == 2

    code, out, _ = invoke("owner", ids[0], "team-edge", "-m", "edge owns it", "--json")
    assert code == 0 and json.loads(out)["item"]["owner"] == "team-edge"
    code, out, _ = invoke("due-date", ids[0], "none", "--json")
    assert code == 0 and json.loads(out)["item"]["due_date"] is None
    code, out, _ = invoke("list", "--env", "prod", "--sort", "-due_date", "-q", "W48", "--json")
    assert [i["id"] for i in json.loads(out)["items"]] == [ids[1]] and json.loads(out)["items"][0]["week"] == "2026-W48"
    invoke("status", ids[1], "done")
    code, _, err = invoke("owner", ids[1], "bob")
    assert code == 4 and err.strip() == "error: cannot change the owner of a done item; allowed: open (reopen it first)"
