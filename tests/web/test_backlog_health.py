"""Backlog health in Prometheus: the /metrics families, their sources, and the alerting rules."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.router.api.metrics_backlog import overdue_since, weeks_open_bucket
from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.generation.records import (
    generation_path,
    last_generation,
    parse_generation,
    record_last_generation,
)
from services.router.jobs.ledger import JsonlRunLedger, RunRecord
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import make_rbac, make_runtime
from tests.conftest import NOW
from tests.web.conftest import require
from tests.web.seed import seed

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "ops" / "alerts" / "backlog.rules.yml"
RULE_TESTS = REPO / "ops" / "alerts" / "backlog.rules.test.yml"
REGISTRY = """\
version: 1
jobs:
  - {name: hourly_risk_snapshot, description: snapshot, schedule: "0 * * * *", tool: risk_history_tool,
     action: snapshot, entitlement: tools.risk.write, dry_run: nothing, log_file: /var/log/a.log}
  - {name: weekly_backlog_generate, description: generate, schedule: "20 6 * * 1", tool: backlog_tool,
     action: auto_generate_weekly, entitlement: tools.backlog.admin, dry_run: nothing, log_file: /var/log/b.log}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> tuple[Samples, dict[str, str]]:
    """Every sample, parsed by Prometheus' own text-format parser (it raises on malformed output)."""
    text = client.get("/metrics").text
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return samples, {f.name: f.type for f in families}


def ledger_line(job: str, slot: datetime, status: str, finished: datetime | None = None) -> str:
    record = RunRecord(job=job, slot=slot, status=status, tool="t", action="a",  # type: ignore[arg-type]
                       started_at=slot, finished_at=finished)
    return json.dumps(record.to_json())


@pytest.fixture
def health_runtime(clock: FixedClock, tmp_path: Path) -> Runtime:
    """A runtime whose repo root is a temp dir: its own task registry, job ledger and state dir."""
    (tmp_path / "ops" / "state").mkdir(parents=True)
    (tmp_path / "ops" / "task_registry.yml").write_text(REGISTRY)
    store = MemoryBacklogStore(clock=clock)
    return make_runtime(store, clock, tmp_path, REPO_ROOT=tmp_path, BACKLOG_STATE_DIR=tmp_path / "state")


def test_metrics_expose_backlog_health_per_env(health_runtime: Runtime, tmp_path: Path) -> None:
    seed(health_runtime, tmp_path / "state")
    slot = NOW - timedelta(hours=3)
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "job_runs.jsonl").write_text("\n".join([
        ledger_line("hourly_risk_snapshot", slot, "running"),
        ledger_line("hourly_risk_snapshot", slot, "succeeded", slot + timedelta(seconds=4)),
        ledger_line("hourly_risk_snapshot", slot + timedelta(hours=1), "failed", slot + timedelta(hours=1)),
        '{"torn": ',
    ]) + "\n")
    with TestClient(create_app(health_runtime, make_rbac())) as client:
        got, types = scrape(client)

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert at("backlog_items", env="prod", status="open") == 7
    assert at("backlog_items_by_priority", env="prod", priority="P1") == 5
    assert at("backlog_overdue_items", env="prod") == 7
    assert at("backlog_overdue_items_by_priority", env="prod", priority="P0") == 1
    assert at("backlog_overdue_items_by_priority", env="prod", priority="P2") == 2
    assert at("backlog_overdue_items_by_priority", env="staging", priority="P2") == 1
    # the gateway review was due 12 days ago: overdue since the midnight after, 11.5 days at noon
    assert at("backlog_oldest_overdue_age_seconds", env="prod") == timedelta(days=11, hours=12).total_seconds()
    assert at("backlog_items_by_weeks_open", env="prod", weeks_open="4-7") == 1
    assert at("backlog_items_by_weeks_open", env="prod", weeks_open="2") == 1
    assert at("backlog_items_by_weeks_open", env="staging", weeks_open="8+") == 0
    assert at("backlog_generation_held_back_items", env="prod") == 2
    ran = datetime(2026, 11, 23, 6, 20, tzinfo=UTC).timestamp()
    assert at("backlog_generation_last_run_timestamp_seconds", env="prod") == ran
    assert at("backlog_job_period_seconds", governance_job="hourly_risk_snapshot") == 3600
    assert at("backlog_job_period_seconds", governance_job="weekly_backlog_generate") == 7 * 86400
    last = (slot + timedelta(seconds=4)).timestamp()
    assert at("backlog_job_last_success_timestamp_seconds", governance_job="hourly_risk_snapshot") == last
    assert at("backlog_job_first_run_timestamp_seconds", governance_job="hourly_risk_snapshot") == slot.timestamp()
    assert ("backlog_job_last_success_timestamp_seconds", (("governance_job", "weekly_backlog_generate"),)) not in got
    assert at("backlog_metrics_scrape_error") == 0 and at("backlog_run_metrics_error") == 0
    assert types["backlog_job_period_seconds"] == "gauge"


def test_no_generation_and_no_ledger_yet(health_runtime: Runtime) -> None:
    with TestClient(create_app(health_runtime, make_rbac())) as client:
        got, _ = scrape(client)
    assert not any(name.startswith("backlog_generation") for name, _ in got)
    assert not any(name == "backlog_job_last_success_timestamp_seconds" for name, _ in got)
    assert got[("backlog_job_period_seconds", (("governance_job", "hourly_risk_snapshot"),))] == 3600
    assert got[("backlog_run_metrics_error", ())] == 0


def test_an_unreadable_task_registry_is_reported_not_raised(health_runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "ops" / "task_registry.yml").write_text("version: 1\njobs: [{name: x}]\n")
    with TestClient(create_app(health_runtime, make_rbac())) as client:
        response = client.get("/metrics")
        got, _ = scrape(client)
    assert response.status_code == 200
    assert got[("backlog_run_metrics_error", ())] == 1
    assert got[("backlog_metrics_scrape_error", ())] == 0


def test_ledger_reader_rereads_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "job_runs.jsonl"
    reader = JsonlRunLedger(tmp_path)
    assert reader.path == path
    assert reader.job_runs() == {}
    slot = NOW - timedelta(days=1)
    path.write_text(ledger_line("daily", slot, "succeeded", slot) + "\n")
    first = reader.job_runs()
    assert first["daily"].last_success == slot and reader.job_runs() is first
    with path.open("a") as handle:
        handle.write(ledger_line("daily", slot + timedelta(days=1), "succeeded", NOW) + "\n")
    assert reader.job_runs()["daily"].last_success == NOW


def test_generation_record_round_trip_and_tolerance(tmp_path: Path) -> None:
    assert last_generation(tmp_path, "prod") is None
    record_last_generation(tmp_path, {"env": "prod", "week": "2026-W48", "held_back": 3, "items": []},
                           action="auto_generate_weekly", ran_at=NOW)
    record = last_generation(tmp_path, "prod")
    assert record is not None and record.held_back_count == 3 and record.ran_at == NOW and record.week == "2026-W48"
    listed = parse_generation("prod", {"held_back": [{"service": "a"}, {"service": "b"}]})
    assert listed is not None and listed.held_back_count == 2 and len(listed.held_back) == 2
    generation_path(tmp_path, "prod").write_text("{not json")
    assert last_generation(tmp_path, "prod") is None
    with pytest.raises(ValueError):
        generation_path(tmp_path, "../etc")


def test_generation_record_is_parsed_again_only_after_a_new_run(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics reads it on every scrape; a large run's record is megabytes."""
    record_last_generation(tmp_path, {"env": "prod", "held_back": 3, "items": []}, action="auto_generate_weekly",
                           ran_at=NOW)
    parsed: list[bytes] = []
    real = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda data: parsed.append(data) or real(data))
    for _ in range(3):
        record = last_generation(tmp_path, "prod")
        assert record is not None and record.held_back_count == 3
    assert len(parsed) == 1
    record_last_generation(tmp_path, {"env": "prod", "held_back": 5, "items": []}, action="auto_generate_weekly",
                           ran_at=NOW)
    record = last_generation(tmp_path, "prod")
    assert record is not None and record.held_back_count == 5 and len(parsed) == 2


def test_weeks_open_buckets_and_overdue_start() -> None:
    assert [weeks_open_bucket(v) for v in (None, 0, 1, 2, 3, 4, 7, 8, 52, True, "3")] == [
        None, None, "1", "2", "3", "4-7", "4-7", "8+", "8+", None, None]
    assert overdue_since("2026-11-25") == datetime(2026, 11, 26, tzinfo=UTC)


def test_promtool_checks_the_rules() -> None:
    promtool = require("promtool", "promtool (Debian package prometheus)")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_promtool_unit_tests_the_thresholds() -> None:
    """5 vs 6 overdue, P0 overdue, a job past 2 of its periods, never-succeeded jobs, unreadable gauges."""
    promtool = require("promtool", "promtool (Debian package prometheus)")
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60,
                            cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_rules_use_only_families_the_router_exports(health_runtime: Runtime) -> None:
    """A renamed metric must not silently disarm an alert: every name in the rules is on /metrics."""
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b(backlog_[a-z_]+)", e)}
    with TestClient(create_app(health_runtime, make_rbac())) as client:
        text = client.get("/metrics").text
    exported = {f.name for f in text_string_to_metric_families(text)}
    assert used and used <= exported, used - exported
