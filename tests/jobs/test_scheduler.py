"""The in-process scheduler on one host (JSONL ledger) with a fake clock: slots, catch-up, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.clock import FixedClock
from services.router.errors import Conflict
from services.router.jobs.ledger import JsonlRunLedger, RunRecord
from services.router.jobs.scheduler import Scheduler
from tests.jobs.probe import NO_DIGEST, Probe, job, registry
from tests.jobs.support import REPO

MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # ISO week 2026-W48


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def make(tmp_path: Path, clock: FixedClock, *jobs: dict[str, object], probe: Probe | None = None
         ) -> tuple[Scheduler, Probe, JsonlRunLedger]:
    probe = probe or Probe()
    ledger = JsonlRunLedger(tmp_path / "state")
    ledger.acquire_single_instance()
    scheduler = Scheduler(registry=registry(*jobs), runtime=probe.runtime(clock, tmp_path), ledger=ledger,
                          clock=clock, host="test-host", pid=4242)
    return scheduler, probe, ledger


def statuses(ledger: JsonlRunLedger, name: str) -> dict[datetime, str]:
    return {r.slot: r.status for r in ledger.history(name, limit=1000)}


def test_runs_each_slot_once_with_its_scheduled_time(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(minutes=1))
    scheduler, probe, ledger = make(tmp_path, clock, job("snap", "0 * * * *"))
    for _ in range(5 * 6):  # five hours, a pass every 10 minutes (twice each: a repeat is a no-op)
        scheduler.tick()
        scheduler.tick()
        clock.advance(minutes=10)
    slots = [MONDAY + hours(h) for h in range(0, 5)]
    assert [as_of for _, as_of in probe.effects] == slots
    assert statuses(ledger, "snap") == dict.fromkeys(slots, "succeeded")
    record = ledger.get("snap", slots[0])
    assert record is not None and (record.host, record.pid, record.attempts) == ("test-host", 4242, 1)
    assert record.summary is not None and "label=snap" in record.summary


def test_catch_up_window_runs_recent_missed_slots_and_skips_older_ones(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(minutes=5))
    scheduler, probe, ledger = make(tmp_path, clock, job("snap", "0 * * * *"), job("daily", "40 3 * * *"))
    scheduler.tick()  # 00:00 runs (5 minutes late)
    clock.set(MONDAY + hours(5))  # down from 00:05 to 05:00
    outcomes = {(o.job, o.slot): o.outcome for o in scheduler.tick()}
    assert outcomes == {
        ("snap", MONDAY + hours(1)): "skipped", ("snap", MONDAY + hours(2)): "skipped",
        ("snap", MONDAY + hours(3)): "skipped", ("daily", MONDAY + timedelta(hours=3, minutes=40)): "succeeded",
        ("snap", MONDAY + hours(4)): "succeeded",  # exactly one hour late: inside the window
        ("snap", MONDAY + hours(5)): "succeeded",
    }
    skipped = ledger.get("snap", MONDAY + hours(1))
    assert skipped is not None and skipped.summary == "missed by 4h; catch-up window is 1h"
    assert [as_of for _, as_of in probe.effects] == [MONDAY, MONDAY + timedelta(hours=3, minutes=40),
                                                     MONDAY + hours(4), MONDAY + hours(5)]
    clock.set(MONDAY + timedelta(days=1, hours=9, minutes=41))  # the daily slot is 6h01m late
    scheduler.tick()
    late = ledger.get("daily", MONDAY + timedelta(days=1, hours=3, minutes=40))
    assert late is not None and late.status == "skipped" and "catch-up window is 6h" in (late.summary or "")


def test_a_fresh_install_runs_only_what_is_inside_the_window(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(hours=6, minutes=10))
    scheduler, probe, ledger = make(tmp_path, clock, job("weekly", "0 6 * * 1"), job("snap", "0 * * * *"))
    outcomes = [(o.job, o.slot, o.outcome) for o in scheduler.tick()]
    assert outcomes == [("weekly", MONDAY + hours(6), "succeeded"), ("snap", MONDAY + hours(6), "succeeded")]
    assert ledger.history(limit=100) and len(probe.effects) == 2


def test_a_custom_catch_up_window(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(minutes=1))
    scheduler, _, ledger = make(tmp_path, clock, job("snap", "0 * * * *", catch_up_minutes=1))
    scheduler.tick()  # exactly one minute late: runs
    clock.set(MONDAY + timedelta(hours=1, minutes=1, seconds=1))
    scheduler.tick()
    assert statuses(ledger, "snap") == {MONDAY: "succeeded", MONDAY + hours(1): "skipped"}


def test_generation_waits_for_a_running_digest_and_names_a_failed_one(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(hours=6, minutes=20))
    digest, generate = job("digest", "0 6 * * 1", "fail"), job("generate", "20 6 * * 1", "fail", requires=["digest"])
    scheduler, _, ledger = make(tmp_path, clock, digest, generate)
    # The 06:00 digest is still running elsewhere: the 06:20 generation waits.
    with ledger.claim(RunRecord("digest", MONDAY + hours(6), "running", "probe_tool", "fail")) as claim:
        assert claim is not None
        outcome = scheduler.run_slot(scheduler.registry.get("generate"), MONDAY + timedelta(hours=6, minutes=20))
        assert outcome.outcome == "waiting"
        claim.finish("failed", finished_at=clock.now(), duration_ms=5, summary=None, error=NO_DIGEST, result=None)
    outcome = scheduler.run_slot(scheduler.registry.get("generate"), MONDAY + timedelta(hours=6, minutes=20))
    assert outcome.outcome == "failed" and outcome.record is not None
    error = outcome.record.error or ""
    assert error.startswith(NO_DIGEST)
    assert "prerequisite digest (slot 2026-11-23T06:00:00.000000Z) failed: No platform digest found" in error


def test_digest_runs_before_generation_when_both_are_caught_up(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + hours(8))
    digest, generate = job("digest", "0 6 * * 1"), job("generate", "20 6 * * 1", requires=["digest"])
    scheduler, probe, _ = make(tmp_path, clock, generate, digest)  # registry order must not matter
    assert [(o.job, o.outcome) for o in scheduler.tick()] == [("digest", "succeeded"), ("generate", "succeeded")]
    assert [label for label, _ in probe.effects] == ["digest", "generate"]


def test_a_run_left_running_by_a_dead_process_is_run_again(tmp_path: Path) -> None:
    clock = FixedClock(MONDAY + timedelta(minutes=1))
    scheduler, probe, ledger = make(tmp_path, clock, job("snap", "0 * * * *"))
    with ledger.claim(RunRecord("snap", MONDAY, "running", "probe_tool", "touch", host="h", pid=1)):
        pass  # the process died before finishing
    ledger.close()
    scheduler, probe, ledger = make(tmp_path, clock, job("snap", "0 * * * *"), probe=probe)
    scheduler.tick()
    record = ledger.get("snap", MONDAY)
    assert record is not None and (record.status, record.attempts) == ("succeeded", 2)
    assert len(probe.effects) == 1


def test_a_second_scheduler_on_the_jsonl_backend_is_refused(tmp_path: Path) -> None:
    first = JsonlRunLedger(tmp_path)
    first.acquire_single_instance()
    with pytest.raises(Conflict, match="another scheduler is already running on this host"):
        JsonlRunLedger(tmp_path).acquire_single_instance()
    first.close()
    JsonlRunLedger(tmp_path).acquire_single_instance()


def test_scheduler_and_history_commands_on_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("BACKLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("REPO_ROOT", str(REPO))
    monkeypatch.setenv("BACKLOG_NOW", "2026-11-26T03:45:00Z")
    runner = CliRunner()
    result = runner.invoke(app, ["scheduler", "--once", "--jobs", "daily_backlog_cleanup"])
    assert result.exit_code == 0, result.stderr
    assert "single-process mode" in result.stdout and "backend jsonl" in result.stdout
    assert (tmp_path / "state" / "job_runs.jsonl").exists()
    result = runner.invoke(app, ["jobs", "history", "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"slot": "2026-11-26T03:40:00.000000Z"' in result.stdout and '"status": "succeeded"' in result.stdout
    result = runner.invoke(app, ["jobs", "history", "--state-dir", str(tmp_path / "state")])
    assert "daily_backlog_cleanup" in result.stdout and "removed=0" in result.stdout
    result = runner.invoke(app, ["jobs", "run", "daily_backlog_cleanup", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert '"dry_run": true' in result.stdout and '"would_remove": 0' in result.stdout
    result = runner.invoke(app, ["jobs", "run", "nightly"])
    assert result.exit_code == 3 and "unknown job 'nightly'" in result.stderr
    result = runner.invoke(app, ["jobs", "run", "daily_backlog_clean"])
    assert "unknown job 'daily_backlog_clean'; did you mean 'daily_backlog_cleanup'?" in result.stderr


def test_history_says_what_a_results_lists_hold_in_words() -> None:
    """``jobs history`` used to print ``firing=[1]``; it means one rule in the ``firing`` list."""
    from services.router.jobs.ledger import summarize

    assert summarize({"dry_run": False, "sent": 2, "firing": [{"rule": "overdue_backlog"}], "would_send": []}) == (
        "dry_run=False sent=2, 1 firing, 0 would_send")
    assert summarize({"env": "prod", "created": 14, "items": [{}] * 16}) == "env=prod created=14, 16 items"
    assert "=[" not in summarize({"envs": {"prod": {}, "staging": {}}}) == "2 envs"
