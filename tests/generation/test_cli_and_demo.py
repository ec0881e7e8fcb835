"""``backlog generate …``, ``backlog policy check`` and ``make run`` (the demo), as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.demo import main as demo_main
from services.router.sample.digest import write_sample_digest
from tests.conftest import NOW
from tests.generation.builders import REPO, file_sizes, platform, svc, write_json, write_policy

SAMPLE_PROD = {("payments", "security"), ("gateway", "arch_review"), ("gateway", "slo_hardening"),
               ("payments", "arch_review"), ("checkout", "slo_hardening"), ("gateway", "followup_debt"),
               ("payments", "deploy_safety"), ("search", "followup_debt")}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("REPO_ROOT", str(REPO))
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("BACKLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("BACKLOG_POLICY_PATH", str(REPO / "config" / "backlog_policy.yml"))
    monkeypatch.setenv("BACKLOG_NOW", "2026-11-26T12:00:00Z")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_prints_a_readable_plan_and_the_real_run_creates_exactly_it(env: Path) -> None:
    write_sample_digest(env / "reports", NOW)
    code, out, err = invoke("generate", "weekly", "--env", "prod", "--dry-run")
    assert code == 0, err
    assert "platform/2026-W48.json" in out and "Plan (dry run)" in out
    for service, category in SAMPLE_PROD:
        assert service in out and category in out
    assert "open_critical_vulns 1 ≥ 1" in out
    assert "prod 2026-W48: 8 to create, 0 to update, 0 unchanged, 0 held back — dry run, nothing written" in out
    assert file_sizes(env / "backlog").get("items.jsonl", 0) == 0

    code, out, _ = invoke("generate", "weekly", "--env", "prod", "--dry-run", "--json")
    plan = json.loads(out)
    code, out, _ = invoke("generate", "weekly", "--env", "prod", "--json")
    applied = json.loads(out)
    assert code == 0 and applied["created"] == 8
    assert {(i["service"], i["category"]) for i in applied["items"]} == SAMPLE_PROD
    assert [(i["dedupe_key"], i["action"]) for i in applied["items"]] == [
        (i["dedupe_key"], i["action"]) for i in plan["items"]]

    code, out, _ = invoke("generate", "weekly", "--env", "prod")
    assert code == 0 and "prod 2026-W48: 0 created, 0 updated, 8 unchanged, 0 held back" in out


def test_policy_file_previews_a_policy_change_against_the_real_backlog(env: Path) -> None:
    write_sample_digest(env / "reports", NOW)
    assert invoke("generate", "weekly", "--env", "prod")[0] == 0
    tighter = write_policy(env / "tighter.yml", defaults={"max_items_per_run": 3},
                           ownership={"overrides": {"gateway": "team-edge"}})
    code, out, err = invoke("generate", "weekly", "--env", "prod", "--dry-run", "--policy", str(tighter), "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["unchanged"], plan["updated"], plan["held_back"]) == (1, 2, 5)
    assert [i["action"] for i in plan["items"]] == ["unchanged", "update", "update", *["held_back"] * 5]
    assert plan["items"][1]["owner"] == "oncall"  # an existing item keeps its owner


def test_errors_are_one_line_with_distinct_exit_codes(env: Path) -> None:
    code, _, err = invoke("generate", "weekly", "--env", "prod")
    assert (code, err) == (4, "error: No platform digest found. Run architecture_pressure_tool.digest first.\n")
    write_json(env / "reports" / "platform" / "2026-W48.json", platform("2026-W48", {"prod": [svc("a", 101.0)]}))
    code, _, err = invoke("generate", "weekly", "--env", "prod")
    assert code == 2 and err.startswith("error: platform/2026-W48.json: envs.prod.services[0].pressure_score: ")
    code, out, _ = invoke("generate", "daily", "--env", "prod")
    assert code == 0 and "generation skipped for prod: generation.daily_from_risk_digest is false" in out


def test_the_dry_run_names_digest_files_it_did_not_read(env: Path) -> None:
    write_sample_digest(env / "reports", NOW)
    write_json(env / "reports" / "platform" / "2026-W54.json", platform("2026-W48", {"prod": [svc("a")]}))
    code, out, err = invoke("generate", "weekly", "--env", "prod", "--dry-run")
    assert code == 0, err
    assert ("ignored (not read): platform/2026-W54.json — not an ISO week: 2026-W54 does not exist: ISO year 2026 "
            "has 53 weeks") in out
    assert "digest files ignored (not read): platform/2026-W54.json" in err  # the warning log line


def test_policy_check(env: Path) -> None:
    code, out, _ = invoke("policy", "check")
    assert code == 0 and out.startswith(f"OK: {REPO / 'config' / 'backlog_policy.yml'}")
    assert "weekly generation on, daily generation off" in out
    bad = env / "bad.yml"
    bad.write_text("defaults: {max_items_per_run: -1}\nextra: 1\n", encoding="utf-8")
    code, _, err = invoke("policy", "check", str(bad))
    assert code == 6 and err.startswith(f"error: {bad}: ") and "unknown key extra" in err
    code, out, _ = invoke("policy", "check", str(env / "missing.yml"), "--json")
    assert code == 6 and json.loads(out)["ok"] is False


def test_demo_writes_a_sample_digest_generates_and_is_idempotent(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", "unset-below")
    monkeypatch.delenv("BACKLOG_BACKEND")  # the demo's own default (jsonl) applies
    assert demo_main([]) == 0
    out = capsys.readouterr().out
    assert "SAMPLE DATA" in out and "prod 2026-W48: 8 created" in out and "staging 2026-W48: 2 created" in out
    assert "Backlog dashboard" in out
    digest = orjson.loads((env / "reports" / "platform" / "2026-W48.json").read_bytes())
    assert digest["sample"] is True and "SAMPLE DATA" in digest["note"]
    assert (env / "reports" / "platform" / "2026-W48.md").read_text(encoding="utf-8").startswith("> **SAMPLE DATA**")
    sizes = file_sizes(env / "backlog")
    assert sizes["items.jsonl"] > 0

    assert demo_main([]) == 0
    out = capsys.readouterr().out
    assert "prod 2026-W48: 0 created, 0 updated, 8 unchanged" in out
    assert file_sizes(env / "backlog") == sizes


def test_the_sample_never_replaces_a_real_digest(env: Path) -> None:
    real = write_json(env / "reports" / "platform" / "2026-W48.json", platform("2026-W48", {"prod": [svc("x")]}))
    before = real.read_bytes()
    path, written = write_sample_digest(env / "reports", NOW)
    assert (path, written, real.read_bytes()) == (real, False, before)
