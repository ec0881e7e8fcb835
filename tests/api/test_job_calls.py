"""Calls naming a governance job (cron's runner): only the registry's job is recorded as its slot
(issue 23, item 2). A dry run is decided by the validated params; a different call is a 409."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router.clock import FixedClock
from services.router.jobs.ledger import JsonlRunLedger
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import headers_for, new_item

SCHEDULER = headers_for("scheduler")
CLEANUP = {"job": "daily_backlog_cleanup", "tool": "backlog_tool", "action": "cleanup"}
LAST_SUCCESS = 'backlog_job_last_success_timestamp_seconds{governance_job="daily_backlog_cleanup"}'


@pytest.fixture
def ledger(tmp_path: Path) -> Callable[[], list[tuple[str, str]]]:
    def runs() -> list[tuple[str, str]]:
        return [(r.job, r.status) for r in JsonlRunLedger(tmp_path / "state").history()]
    return runs


@pytest.fixture
def closed_item(client: TestClient, clock: FixedClock) -> str:
    item = new_item(client, "old")
    client.post(f"/v1/backlog/items/{item['id']}/status", json={"status": "done"}, headers=headers_for("admin"))
    clock.advance(days=200)
    return str(item["id"])


@pytest.mark.parametrize("dry_run", ["1", 1, "true", "yes", 0, "off"])
def test_a_dry_run_that_is_not_a_json_boolean_is_refused_and_not_recorded(
        client: TestClient, ledger: Callable[[], list[Any]], closed_item: str, dry_run: Any) -> None:
    response = client.post("/v1/tools/execute", json={**CLEANUP, "dry_run": dry_run}, headers=SCHEDULER)
    assert response.status_code == 422 and response.json()["field"] == "dry_run", response.text
    assert ledger() == []
    assert LAST_SUCCESS not in client.get("/metrics").text
    assert client.get(f"/v1/backlog/items/{closed_item}", headers=SCHEDULER).status_code == 200


def test_a_real_dry_run_runs_unrecorded_and_the_real_call_is_recorded(
        client: TestClient, ledger: Callable[[], list[Any]], closed_item: str) -> None:
    dry = client.post("/v1/tools/execute", json={**CLEANUP, "dry_run": True}, headers=SCHEDULER)
    assert dry.status_code == 200 and dry.json()["result"]["would_remove"] == 1
    assert ledger() == [] and LAST_SUCCESS not in client.get("/metrics").text
    real = client.post("/v1/tools/execute", json=CLEANUP, headers=SCHEDULER)
    assert real.status_code == 200 and real.json()["result"]["removed"] == 1
    assert ledger() == [("daily_backlog_cleanup", "succeeded")]
    assert LAST_SUCCESS in client.get("/metrics").text


@pytest.mark.parametrize(("body", "named"), [
    ({**CLEANUP, "action": "dashboard"}, "runs backlog_tool.cleanup in the task registry, not backlog_tool.dashboard"),
    ({**CLEANUP, "tool": "risk_history_tool"}, "not risk_history_tool.cleanup"),
    ({**CLEANUP, "retention_days": 1}, "retention_days: None in the registry, 1 sent"),
    ({"job": "weekly_backlog_generate", "tool": "backlog_tool", "action": "auto_generate_weekly", "env": "staging"},
     "env: 'prod' in the registry, 'staging' sent"),
    ({"job": "weekly_backlog_generate", "tool": "backlog_tool", "action": "auto_generate_weekly",
      "params": {"env": "staging", "dry_run": True}}, "env: 'prod' in the registry"),
    ({**CLEANUP, "job": "nightly_cleanup"}, "no job 'nightly_cleanup' in the task registry"),
], ids=["action", "tool", "extra-param", "other-env", "dry-run-too", "unknown-job"])
def test_a_call_that_is_not_the_registrys_job_is_refused(
        client: TestClient, store: MemoryBacklogStore, ledger: Callable[[], list[Any]], closed_item: str,
        body: dict[str, Any], named: str) -> None:
    response = client.post("/v1/tools/execute", json=body, headers=SCHEDULER)
    assert response.status_code == 409, response.text
    assert named in response.json()["error"]
    assert ledger() == []
    assert client.get(f"/v1/backlog/items/{closed_item}", headers=SCHEDULER).status_code == 200  # nothing ran


def test_the_registrys_params_match_with_defaults_and_the_slot_param_aside(
        client: TestClient, ledger: Callable[[], list[Any]]) -> None:
    """``weekly_platform_priority_digest`` declares ``{env: prod}`` and slot_param ``as_of``."""
    body = {"job": "weekly_platform_priority_digest", "tool": "architecture_pressure_tool", "action": "digest",
            "params": {"env": "prod", "as_of": "2026-11-23T06:00:00Z"}}
    response = client.post("/v1/tools/execute", json=body, headers=SCHEDULER)
    assert response.status_code == 200, response.text
    assert ledger() == [("weekly_platform_priority_digest", "succeeded")]
