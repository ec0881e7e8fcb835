"""Several scheduler processes on one Postgres: each slot exactly once, a killed holder's slot
retried, the catch-up window honoured (issue 7). Needs 127.0.0.1:5432; fails under CI=true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.router.clock import FixedClock, iso_z
from services.router.jobs.ledger import RunRecord
from services.router.jobs.pg_ledger import PgRunLedger
from services.router.jobs.scheduler import Scheduler
from tests.jobs.probe import EFFECTS_DDL, Probe, job, registry
from tests.jobs.support import REPO
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
FAKE_HOUR_REAL_SECONDS = 0.3


@pytest.fixture(scope="module")
def module_dsn() -> Iterator[str]:
    """A fresh database migrated by the real migration (job_runs is its step 3), plus the probe's table."""
    with fresh_database("bb_jobs") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(EFFECTS_DDL)
        yield dsn


@pytest.fixture
def dsn(module_dsn: str) -> str:
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE job_runs, effects")
    return module_dsn


def query(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def child(dsn: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.jobs.scheduler_child", "--dsn", dsn, *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_three_processes_run_twenty_slots_exactly_once(dsn: str) -> None:
    # History: the slot before T0 ran, so the scan starts there on every process.
    ledger = PgRunLedger(dsn)
    with ledger.claim(RunRecord("probe_hourly", T0 - timedelta(hours=1), "running", "probe_tool", "touch")) as c:
        assert c is not None
        c.finish("succeeded", finished_at=T0, duration_ms=1, summary="seed", error=None, result=None)
    ledger.close()
    speed = 3600 / FAKE_HOUR_REAL_SECONDS
    anchor = time.time() + 4.0  # every child has imported by then (even on a loaded CI box): same fake time
    start, until = T0 - timedelta(minutes=1), T0 + timedelta(hours=19, minutes=30)
    procs = [child(dsn, "--start", iso_z(start), "--anchor", str(anchor), "--speed", str(speed),
                   "--until", iso_z(until)) for _ in range(3)]
    outputs = [p.communicate(timeout=40) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]

    runs = query(dsn, "SELECT slot, status, attempts, pid FROM job_runs WHERE slot >= %s ORDER BY slot", T0)
    expected = [T0 + timedelta(hours=h) for h in range(20)]
    assert [r[0] for r in runs] == expected
    assert {(r[1], r[2]) for r in runs} == {("succeeded", 1)}
    effects = query(dsn, "SELECT as_of, pid FROM effects ORDER BY as_of")
    assert [e[0] for e in effects] == expected  # 20 effects, one per slot, each with its slot's time
    assert {(r[0], r[3]) for r in runs} == {(e[0], e[1]) for e in effects}  # the recorded runner did it
    # Several processes competed: each tried slots another held ("busy"), and none ran one twice.
    assert len({r[3] for r in runs}) >= 2, "expected the slots to be spread over the processes"


def test_a_process_killed_while_holding_a_slot_the_slot_completes_once(dsn: str) -> None:
    at = iso_z(T0 + timedelta(minutes=1))
    holder = child(dsn, "--start", at, "--hang", "--catch-up-minutes", "60")
    try:
        wait_for(lambda: query(dsn, "SELECT status FROM job_runs") == [("running",)], 15, "the holder's claim")
        (pid,) = query(dsn, "SELECT pid FROM job_runs")[0]
        assert pid == holder.pid
        other = child(dsn, "--start", at, "--poll-seconds", "0.05", "--catch-up-minutes", "60")
        try:
            wait_for(lambda: other.stdout is not None and other.stdout.readline().strip() == "ready", 15, "ready")
            time.sleep(0.8)  # the other process polls but the slot is held: it must not run it
            assert query(dsn, "SELECT status, pid FROM job_runs") == [("running", holder.pid)]
            assert query(dsn, "SELECT count(*) FROM effects") == [(0,)]
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            wait_for(lambda: query(dsn, "SELECT status FROM job_runs") == [("succeeded",)], 15, "the retry")
            assert query(dsn, "SELECT attempts, pid FROM job_runs") == [(2, other.pid)]
            time.sleep(0.3)  # a few more passes change nothing
            assert query(dsn, "SELECT count(*) FROM effects") == [(1,)]
            assert query(dsn, "SELECT count(*) FROM job_runs") == [(1,)]
        finally:
            other.send_signal(signal.SIGTERM)
            other.communicate(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=10)


def test_catch_up_window_on_postgres(dsn: str, tmp_path: Path) -> None:
    clock = FixedClock(T0 + timedelta(minutes=2))
    probe = Probe(dsn)
    jobs = registry(job("probe_hourly", "0 * * * *"), job("probe_daily", "40 3 * * *"))
    ledger = PgRunLedger(dsn)
    try:
        scheduler = Scheduler(registry=jobs, runtime=probe.runtime(clock, tmp_path), ledger=ledger, clock=clock)
        scheduler.tick()
        # A holder of 01:00 died, and nobody ran anything until 04:30.
        with ledger.claim(RunRecord("probe_hourly", T0 + timedelta(hours=1), "running", "probe_tool", "touch",
                                    host="gone", pid=1)):
            pass
        clock.set(T0 + timedelta(hours=4, minutes=30))
        scheduler.tick()
        rows = dict(query(dsn, "SELECT to_char(slot, 'HH24:MI'), status FROM job_runs WHERE job = 'probe_hourly'"))
        assert rows == {"00:00": "succeeded", "01:00": "skipped", "02:00": "skipped", "03:00": "skipped",
                        "04:00": "succeeded"}
        daily = query(dsn, "SELECT status FROM job_runs WHERE job = 'probe_daily'")
        assert daily == [("succeeded",)]  # 03:40 is 50 minutes late: within the 6 h window
        (summary,) = query(dsn, "SELECT summary FROM job_runs WHERE job = 'probe_hourly' AND slot = %s",
                           T0 + timedelta(hours=1))[0]
        assert summary == "missed by 3h30m; catch-up window is 1h (its run by gone pid 1 died)"
        assert query(dsn, "SELECT count(*) FROM effects") == [(3,)]
        history = ledger.history(limit=3)
        assert (history[0].job, history[0].status) == ("probe_hourly", "succeeded")
    finally:
        ledger.close()


def test_backlog_scheduler_started_twice_runs_each_slot_once(dsn: str, tmp_path: Path) -> None:
    """The acceptance check with the real command, tools and Postgres stores."""
    env = {**os.environ, "BACKLOG_BACKEND": "postgres", "BACKLOG_POSTGRES_DSN": dsn, "REPO_ROOT": str(REPO),
           "BACKLOG_NOW": "2026-11-26T03:45:00Z", "BACKLOG_REPORTS_DIR": str(tmp_path / "reports"),
           "BACKLOG_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-c", "from services.router.cli import main; main()", "scheduler", "--once",
               "--jobs", "hourly_risk_snapshot,risk_history_cleanup,daily_backlog_cleanup"]
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert all("multi-process mode" in out for out, _ in outputs)
    runs = query(dsn, "SELECT job, to_char(slot, 'HH24:MI'), status, attempts FROM job_runs ORDER BY slot")
    assert runs == [("hourly_risk_snapshot", "03:00", "succeeded", 1),
                    ("risk_history_cleanup", "03:20", "succeeded", 1),
                    ("daily_backlog_cleanup", "03:40", "succeeded", 1)]
