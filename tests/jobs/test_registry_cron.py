"""ops/task_registry.yml ↔ ops/cron/jobs.cron: validated, rendered, compared (DESIGN §10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.config_file import parse_config_text
from services.router.errors import PolicyInvalid
from services.router.jobs.cron import compare, parse_cron, render
from services.router.jobs.registry import (
    REGISTRY_SHAPE,
    SCHEDULER_ENTITLEMENTS,
    TaskRegistry,
    UniqueKeyLoader,
    load_registry,
)
from tests.jobs.support import REPO

REGISTRY = REPO / "ops" / "task_registry.yml"
CRON = REPO / "ops" / "cron" / "jobs.cron"

# RUNBOOK §9, "Governance cron schedule", and the log files its deployment section names.
RUNBOOK_JOBS = {
    "hourly_risk_snapshot": ("0 * * * *", "risk_history_tool", "snapshot"),
    "daily_risk_digest": ("0 9 * * *", "risk_history_tool", "digest"),
    "risk_history_cleanup": ("20 3 * * *", "risk_history_tool", "cleanup"),
    "weekly_platform_priority_digest": ("0 6 * * 1", "architecture_pressure_tool", "digest"),
    "weekly_backlog_generate": ("20 6 * * 1", "backlog_tool", "auto_generate_weekly"),
    "daily_backlog_cleanup": ("40 3 * * *", "backlog_tool", "cleanup"),
}
# The runbook's six, plus the alert notifier of the alert-thresholds work (every 15 minutes).
REGISTRY_JOBS = {**RUNBOOK_JOBS, "backlog_alerts": ("*/15 * * * *", "backlog_tool", "notify_alerts"),
                 "tracker_sync": ("*/5 * * * *", "tracker_tool", "sync")}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_registry_declares_the_runbook_jobs_exactly() -> None:
    registry = load_registry(REGISTRY)
    assert {j.name: (j.schedule, j.tool, j.action) for j in registry.jobs} == REGISTRY_JOBS
    logs = {j.name: j.log_file for j in registry.jobs}
    assert logs["hourly_risk_snapshot"] == "/var/log/daarion/risk_snapshot.log"
    assert logs["weekly_backlog_generate"] == "/var/log/daarion/backlog_generate.log"
    assert all(j.entitlement in SCHEDULER_ENTITLEMENTS and j.dry_run and j.description for j in registry.jobs)
    by_name = {j.name: j for j in registry.jobs}
    assert by_name["weekly_backlog_generate"].params == {"env": "prod"}
    assert by_name["weekly_backlog_generate"].requires == ["weekly_platform_priority_digest"]
    assert by_name["hourly_risk_snapshot"].catch_up.total_seconds() == 3600
    assert by_name["weekly_backlog_generate"].catch_up.total_seconds() == 6 * 3600


def test_committed_cron_file_is_the_rendering_of_the_registry() -> None:
    registry = load_registry(REGISTRY)
    assert CRON.read_text() == render(registry)
    assert compare(registry, CRON.read_text()) == []
    code, out, err = invoke("jobs", "check", "--no-tools")
    assert code == 0, err
    assert f"ok: ops/cron/jobs.cron matches ops/task_registry.yml ({len(REGISTRY_JOBS)} jobs)" in out


def test_committed_cron_file_header_and_lines() -> None:
    parsed = parse_cron(CRON.read_text())
    assert set(parsed.variables) == {"SHELL", "PATH", "REPO_ROOT", "ROUTER_URL"}
    assert parsed.variables["ROUTER_URL"] == "http://localhost:8000"
    assert {j.name for j in parsed.jobs} == set(REGISTRY_JOBS)
    for job in parsed.jobs:
        assert job.user == "daarion" and job.env_file == "/etc/daarion/governance.env"
        assert job.log_file.startswith("/var/log/daarion/")
    assert "SCHEDULER_API_KEY=" not in "\n".join(ln for ln in CRON.read_text().splitlines() if not ln.startswith("#"))


def test_jobs_fit_the_tools_the_router_serves() -> None:
    """Each job's action exists, its entitlement covers the action's, its params validate."""
    code, _, err = invoke("jobs", "check")
    assert code == 0, err


def copy_pair(tmp_path: Path) -> tuple[Path, Path]:
    registry, cron = tmp_path / "task_registry.yml", tmp_path / "jobs.cron"
    registry.write_text(REGISTRY.read_text())
    cron.write_text(CRON.read_text())
    return registry, cron


def test_a_schedule_changed_in_the_cron_file_is_reported(tmp_path: Path) -> None:
    registry, cron = copy_pair(tmp_path)
    cron.write_text(cron.read_text().replace("20 6 * * 1 daarion", "30 6 * * 1 daarion"))
    code, _, err = invoke("jobs", "check", "--no-tools", "--registry", str(registry), "--cron", str(cron))
    assert code == 1
    assert "weekly_backlog_generate: schedule differs" in err
    assert "has '30 6 * * 1'" in err and "has '20 6 * * 1'" in err


def test_a_schedule_changed_in_the_registry_is_reported(tmp_path: Path) -> None:
    registry, cron = copy_pair(tmp_path)
    registry.write_text(registry.read_text().replace('schedule: "40 3 * * *"', 'schedule: "45 3 * * *"'))
    code, _, err = invoke("jobs", "check", "--no-tools", "--registry", str(registry), "--cron", str(cron))
    assert code == 1 and "daily_backlog_cleanup: schedule differs" in err
    code, out, _ = invoke("jobs", "render", "--registry", str(registry), "--output", str(cron))
    assert code == 0 and "wrote" in out
    code, _, err = invoke("jobs", "check", "--no-tools", "--registry", str(registry), "--cron", str(cron))
    assert code == 0, err


def test_missing_extra_and_changed_jobs_are_each_reported(tmp_path: Path) -> None:
    registry = load_registry(REGISTRY)
    text = CRON.read_text()
    lines = text.splitlines(keepends=True)
    dropped = "".join(ln for ln in lines if "--job risk_history_cleanup " not in ln)
    alerts = next(ln for ln in lines if "--job backlog_alerts " in ln)
    extra = dropped + alerts.replace("--job backlog_alerts", "--job rogue_job")
    changed = extra.replace("""'{"env":"prod"}' ; } >> /var/log/daarion/risk_digest.log""",
                            """'{"env":"staging"}' ; } >> /var/log/daarion/risk_digest.log""")
    changed = changed.replace("ROUTER_URL=http://localhost:8000", "ROUTER_URL=http://router:8000")
    diffs = "\n".join(compare(registry, changed))
    assert "risk_history_cleanup: in ops/task_registry.yml but missing from ops/cron/jobs.cron" in diffs
    assert "rogue_job: in ops/cron/jobs.cron (line" in diffs
    assert 'daily_risk_digest: params differs' in diffs and '{"env":"staging"}' in diffs
    assert "ROUTER_URL: ops/cron/jobs.cron has 'http://router:8000'" in diffs


def test_a_hand_edited_comment_is_reported_as_not_the_rendering() -> None:
    registry = load_registry(REGISTRY)
    diffs = compare(registry, CRON.read_text().replace("# Do not edit", "# Please do not edit"))
    assert len(diffs) == 1 and "not the rendering" in diffs[0]


def test_render_to_stdout() -> None:
    code, out, _ = invoke("jobs", "render", "--output", "-")
    assert code == 0 and out == CRON.read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (('schedule: "0 9 * * *"', 'schedule: "0 25 * * *"'), "jobs.1.schedule: not a valid cron expression"),
    (('schedule: "0 9 * * *"', 'schedule: "0 0 9 * * *"'), "jobs.1.schedule: expected 5 cron fields"),
    (("entitlement: tools.risk.write", "entitlement: tools.risk.admin"), "scheduler account holds only"),
    (("action: snapshot", "action: snapshot\n    colour: blue"), "unknown key jobs.0.colour"),
    (("requires: [weekly_platform_priority_digest]", "requires: [nightly]"), "requires unknown job(s) nightly"),
    (("- name: daily_risk_digest", "- name: hourly_risk_snapshot"), "job hourly_risk_snapshot is declared twice"),
    (("params: {env: prod}", "params: {env: prod, tool: x}"), "params may not set tool"),
    (("version: 1", "version: 1\nversion: 2"), "duplicate key 'version'"),
])
def test_invalid_registry_names_file_and_key(edit: tuple[str, str], message: str) -> None:
    text = REGISTRY.read_text().replace(*edit, 1)
    assert text != REGISTRY.read_text()
    with pytest.raises(PolicyInvalid) as caught:
        parse_config_text(TaskRegistry, text, Path("ops/task_registry.yml"), loader=UniqueKeyLoader,
                          shape=REGISTRY_SHAPE)
    assert caught.value.message.startswith("ops/task_registry.yml: ")
    assert message in caught.value.message


def test_jobs_list_shows_the_registry() -> None:
    code, out, _ = invoke("jobs", "list", "--json")
    assert code == 0 and '"weekly_backlog_generate"' in out and '"catch_up_minutes": 360' in out
