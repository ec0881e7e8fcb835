"""The six governance jobs end to end with the real tools: through the runner and the router as cron
runs them, and through the in-process scheduler (RUNBOOK §3, §9)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.router.clock import FixedClock
from services.router.jobs.ledger import JsonlRunLedger, RunRecord
from services.router.jobs.registry import TaskRegistry, load_registry
from services.router.jobs.scheduler import Scheduler
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.stores.memory import MemoryBacklogStore
from tests.jobs.probe import NO_DIGEST
from tests.jobs.support import REPO, live_router, run_runner

DIGEST_AT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday of 2026-W48
GENERATE_AT = DIGEST_AT + timedelta(minutes=20)


def registry() -> TaskRegistry:
    return load_registry(REPO / "ops" / "task_registry.yml")


def make_runtime(tmp_path: Path, clock: FixedClock) -> Runtime:
    settings = Settings(REPO_ROOT=REPO, BACKLOG_REPORTS_DIR=tmp_path / "reports", BACKLOG_STATE_DIR=tmp_path / "state",
                        BACKLOG_BACKEND="memory")
    return build_runtime(settings, clock=clock, store=MemoryBacklogStore(clock=clock))


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[str, FixedClock]]:
    clock = FixedClock(GENERATE_AT)
    with live_router(make_runtime(tmp_path, clock)) as url:
        yield url, clock


def runner_args(name: str, url: str) -> list[str]:
    import json

    job = registry().get(name)
    return ["--job", name, "--tool", job.tool, "--action", job.action, "--params-json", json.dumps(job.params),
            "--router-url", url]


def test_generation_without_a_digest_prints_the_runbooks_error(router: tuple[str, FixedClock], tmp_path: Path) -> None:
    url, _ = router
    r = run_runner(*runner_args("weekly_backlog_generate", url))
    assert r.code == 6
    assert r.err.splitlines()[0] == f"error: {NO_DIGEST}"
    (run,) = JsonlRunLedger(tmp_path / "state").history()
    assert (run.job, run.slot, run.status, run.error) == ("weekly_backlog_generate", GENERATE_AT, "failed", NO_DIGEST)


def test_the_six_jobs_run_through_the_runner_and_the_runbooks_dry_run_prints_a_plan(
    router: tuple[str, FixedClock], tmp_path: Path,
) -> None:
    url, _ = router
    for job in registry().jobs:  # registry order: the digest (06:00) comes before generation (06:20)
        r = run_runner(*runner_args(job.name, url))
        assert r.code == 0, (job.name, r.err)
        assert f"job={job.name} {job.call} ok" in r.out.splitlines()[0]
    # cron's runs are recorded under their scheduled slots, so /metrics knows each job's last success
    runs = {run.job: run for run in JsonlRunLedger(tmp_path / "state").history()}
    assert sorted(runs) == sorted(registry().names)
    assert all(run.status == "succeeded" and run.finished_at == GENERATE_AT for run in runs.values())
    assert runs["weekly_backlog_generate"].slot == GENERATE_AT
    assert runs["weekly_platform_priority_digest"].slot == DIGEST_AT
    assert runs["hourly_risk_snapshot"].slot == GENERATE_AT.replace(minute=0)
    # RUNBOOK §9 "Dry-run testing", verbatim but for the URL.
    r = run_runner("--tool", "backlog_tool", "--action", "auto_generate_weekly", "--params-json", '{"env":"prod"}',
                   "--dry-run", "--router-url", url)
    assert r.code == 0, r.err
    assert r.result["dry_run"] is True


def scheduler_for(tmp_path: Path, clock: FixedClock, *names: str) -> tuple[Scheduler, JsonlRunLedger]:
    ledger = JsonlRunLedger(tmp_path / "state")
    ledger.acquire_single_instance()
    scheduler = Scheduler(registry=registry(), runtime=make_runtime(tmp_path, clock), ledger=ledger, clock=clock,
                          jobs=list(names))
    return scheduler, ledger


def test_scheduler_generation_at_0620_finds_the_0600_digest(tmp_path: Path) -> None:
    clock = FixedClock(DIGEST_AT + timedelta(seconds=5))
    scheduler, _ = scheduler_for(tmp_path, clock, "weekly_platform_priority_digest", "weekly_backlog_generate")
    assert [(o.job, o.outcome) for o in scheduler.tick()] == [("weekly_platform_priority_digest", "succeeded")]
    assert (tmp_path / "reports" / "platform" / "2026-W48.json").exists()
    clock.set(GENERATE_AT + timedelta(seconds=5))
    outcomes = scheduler.tick()
    assert [(o.job, o.outcome) for o in outcomes] == [("weekly_backlog_generate", "succeeded")], outcomes


def test_scheduler_generation_names_the_missing_prerequisite(tmp_path: Path) -> None:
    clock = FixedClock(GENERATE_AT + timedelta(seconds=5))
    scheduler, ledger = scheduler_for(tmp_path, clock, "weekly_backlog_generate")
    with ledger.claim(RunRecord("weekly_platform_priority_digest", DIGEST_AT, "running",
                                "architecture_pressure_tool", "digest")) as claim:
        assert claim is not None
        claim.finish("failed", finished_at=DIGEST_AT, duration_ms=3, summary=None,
                     error="signal store unavailable", result=None)
    (outcome,) = scheduler.tick()
    assert outcome.outcome == "failed" and outcome.record is not None
    assert outcome.record.error == (
        f"{NO_DIGEST} — prerequisite weekly_platform_priority_digest (slot 2026-11-23T06:00:00.000000Z) failed: "
        "signal store unavailable"
    )
