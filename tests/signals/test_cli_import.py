"""``backlog signals import FILE.jsonl``: counts, reasons by line number, harmless resends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from tests.signals.builders import alert, deploy, incident


@pytest.fixture
def env(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("REPO_ROOT", str(root))
    monkeypatch.setenv("BACKLOG_NOW", "2026-11-26T12:00:00Z")
    return root


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_counts_and_reasons(env: Path) -> None:
    file = write_jsonl(env / "signals.jsonl", [
        json.dumps(incident()), "", json.dumps(deploy()), "{not json", json.dumps({"kind": "alert", "id": "x"}),
        json.dumps(alert()),
    ])
    result = CliRunner().invoke(app, ["signals", "import", str(file)])
    assert result.exit_code == 2, "a partial import is visible to scripts"
    assert "accepted 3 (created 3, updated 0, unchanged 0), rejected 2" in result.stdout
    assert "line 4: not valid JSON" in result.stdout
    assert "line 5 (alert x): env: required field is missing" in result.stdout
    assert "alertname: required field is missing" in result.stdout
    assert "signals_tool.ingest rejected 1 of 4 signal(s): missing_field=1" in result.stderr  # the log line
    assert len((env / "ops" / "signals" / "signals.jsonl").read_text().splitlines()) == 3

    again = CliRunner().invoke(app, ["signals", "import", str(file), "--json"])
    out = json.loads(again.stdout)
    assert out["counts"] == {"accepted": 3, "rejected": 2, "created": 0, "updated": 0, "unchanged": 3}
    assert [r["line"] for r in out["rejected"]] == [4, 5]


def test_clean_import_exits_zero_and_dry_run_stores_nothing(env: Path) -> None:
    file = write_jsonl(env / "ok.jsonl", [json.dumps(incident()), json.dumps(deploy())])
    dry = CliRunner().invoke(app, ["signals", "import", str(file), "--dry-run"])
    assert dry.exit_code == 0 and "dry run: would accept 2" in dry.stdout
    assert not (env / "ops" / "signals" / "signals.jsonl").exists()
    assert CliRunner().invoke(app, ["signals", "import", str(file)]).exit_code == 0


def test_signals_list_filters_by_env_service_kind_status_and_limit(env: Path) -> None:
    file = write_jsonl(env / "signals.jsonl", [
        json.dumps(incident("INC-1", started_at="2026-11-25T10:00:00Z")),
        json.dumps(incident("INC-2", started_at="2026-11-26T10:00:00Z")),
        json.dumps(incident("INC-3", status="resolved", resolved_at="2026-11-26T11:00:00Z")),
        json.dumps(incident("INC-4", env="staging")), json.dumps(deploy()), json.dumps(alert()),
    ])
    assert CliRunner().invoke(app, ["signals", "import", str(file)]).exit_code == 0
    listed = CliRunner().invoke(app, ["signals", "list", "--env", "prod", "--kind", "incident", "--status", "open",
                                      "--json"])
    assert listed.exit_code == 0, listed.stderr
    out = json.loads(listed.stdout)
    assert (out["count"], [s["id"] for s in out["signals"]]) == (2, ["INC-2", "INC-1"]), "newest first"
    one = CliRunner().invoke(app, ["signals", "list", "--env", "prod", "--kind", "incident", "--status", "open",
                                   "--limit", "1"])
    assert one.exit_code == 0 and "INC-2" in one.stdout and "INC-1" not in one.stdout
    assert "2 signal(s) (showing the newest 1; --limit N for more)" in one.stdout
    service = CliRunner().invoke(app, ["signals", "list", "--service", "nope", "--json"])
    assert json.loads(service.stdout)["count"] == 0
    bad = CliRunner().invoke(app, ["signals", "list", "--status", "closed"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: status: Input should be")
