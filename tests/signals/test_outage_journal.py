"""Signals and risk snapshots accepted on JSONL during a Postgres outage reach Postgres afterwards.

A throwaway cluster (``tests/pg_support.py``) is stopped under a live Auto store, as in
``tests/stores/test_auto_store.py``; signals come in through the tools and the HTTP route, the
cluster comes back, and Postgres is read directly: everything acknowledged meanwhile is there,
a second replay changes nothing, and a value Postgres got later is not overwritten by older news.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.signals.models import parse_signal
from services.router.signals.store import RiskSnapshot, SignalStore
from services.router.signals.store_postgres import PostgresSignalStore
from services.router.stores.auto import AutoBacklogStore
from tests.api.conftest import KEYS, make_rbac
from tests.factories import item
from tests.pg_support import FakeMonotonic, ThrowawayCluster, app_database
from tests.signals.builders import alert, deploy, incident
from tests.signals.test_alertmanager import FIRING

pytestmark = pytest.mark.postgres

APP_USER, DB, PASSWORD = "bb_sigout", "bb_sigout_db", "sigout-pw-5d1e9a7c"
RETRY = 300.0
JOURNAL = "signals_journal.jsonl"  # in the signals folder (README, Auto backend)
REPO = Path(__file__).resolve().parents[2]
Run = Callable[..., Any]


@pytest.fixture
def dsn(cluster: ThrowawayCluster) -> str:
    """This module's database on the throwaway cluster, migrated and empty."""
    return app_database(cluster, APP_USER, PASSWORD, DB,
                        empty="backlog_items, backlog_events, backlog_applied_ops, signals, risk_snapshots")


def auto_settings(root: Path, dsn: str | None) -> Settings:
    return Settings(REPO_ROOT=root, BACKLOG_BACKEND="auto", BACKLOG_POSTGRES_DSN=dsn, POSTGRES_DSN=None,
                    BACKLOG_PG_RETRY_SECONDS=RETRY, BACKLOG_PG_CONNECT_TIMEOUT_SECONDS=1)


@pytest.fixture
def tick() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def rt(dsn: str, root: Path, clock: FixedClock, tick: FakeMonotonic, cluster: ThrowawayCluster) -> Iterator[Runtime]:
    """The router's wiring on an Auto store; the cluster is running again when the test ends."""
    settings = auto_settings(root, dsn)
    runtime = build_runtime(settings, clock=clock, store=AutoBacklogStore(settings, clock=clock, monotonic=tick))
    try:
        yield runtime
    finally:
        if not cluster.running:
            cluster.start()
        runtime.close()


def runner(rt: Runtime) -> Run:
    def run(tool: str, action: str, **params: Any) -> Any:
        return rt.execute("tester", tool, action, params)

    return run


def go_down(rt: Runtime, cluster: ThrowawayCluster) -> None:
    """Stop the server; the Auto store notices on its next backlog call, as in production."""
    cluster.stop()
    rt.store.upsert(item("k-outage"), actor="gen")
    assert (rt.store.status().backend, rt.store.status().degraded) == ("jsonl", True)


def come_back(rt: Runtime, cluster: ThrowawayCluster, tick: FakeMonotonic) -> None:
    """Start the server; the lazy retry after ``BACKLOG_PG_RETRY_SECONDS`` replays and switches."""
    cluster.start()
    tick.now += RETRY
    assert rt.store.status().backend == "postgres"


def pg_signals(dsn: str) -> dict[tuple[str, str], dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT kind, id, data FROM signals").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def pg_snapshots(dsn: str) -> dict[tuple[str, str, datetime], tuple[float, datetime]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT env, service, slot, score, computed_at FROM risk_snapshots").fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def reported(out: dict[str, Any], computed_at: datetime) -> dict[tuple[str, str, datetime], tuple[float, datetime]]:
    """The snapshots a ``risk_history_tool snapshot`` answer says it wrote, keyed like ``pg_snapshots``."""
    slot = datetime.fromisoformat(out["slot"].replace("Z", "+00:00"))
    return {(s["env"], s["service"], slot): (s["score"], computed_at) for s in out["snapshots"]}


def test_what_an_outage_accepted_is_in_postgres_after_recovery_once(
        rt: Runtime, cluster: ThrowawayCluster, dsn: str, clock: FixedClock, tick: FakeMonotonic, root: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="signal_store")
    run = runner(rt)
    assert run("signals_tool", "ingest", signals=[incident("INC-1"), deploy("DEP-1")])["backend"] == "postgres"
    assert run("risk_history_tool", "snapshot")["backend"] == "postgres"  # slot 12:00, computed 12:00

    go_down(rt, cluster)
    clock.advance(minutes=90)  # 13:30
    during = run("signals_tool", "ingest", signals=[incident("INC-1", status="mitigated"), incident("INC-2"),
                                                    deploy("DEP-1")])
    assert during["backend"] == "jsonl"
    webhook = TestClient(create_app(rt, make_rbac())).post(
        "/v1/signals/alertmanager", json=FIRING, headers={"Authorization": f"Bearer {KEYS['alertmanager']}"})
    assert webhook.status_code == 200 and webhook.json()["backend"] == "jsonl", webhook.text
    now = run("risk_history_tool", "snapshot")  # slot 13:00
    backfill = run("risk_history_tool", "snapshot", as_of="2026-11-26T12:30:00Z")  # slot 12:00 again, newer
    assert (now["backend"], backfill["backend"]) == ("jsonl", "jsonl") and backfill["written"] > 0
    journal = root / "ops" / "signals" / JOURNAL
    saved = journal.read_bytes()

    come_back(rt, cluster, tick)
    assert journal.stat().st_size == 0
    signals = pg_signals(dsn)
    assert set(signals) == {("incident", "INC-1"), ("incident", "INC-2"), ("deploy", "DEP-1"),
                            ("alert", "1a30ba71cca2921f"), ("alert", "c6eadffa33fcdf37")}
    assert signals[("incident", "INC-1")]["status"] == "mitigated"
    snapshots = pg_snapshots(dsn)
    assert snapshots == {**reported(now, clock.now()), **reported(backfill, clock.now())}
    assert any("replaying 4 signal write(s) accepted on the JSONL fallback" in r.getMessage() for r in caplog.records)

    # The reads that go to Postgres again see the outage's writes.
    assert run("signals_tool", "list")["count"] == 5
    history = run("risk_history_tool", "history", env="prod", service="gateway", days=1)
    assert [p["slot"][:13] for p in history["points"]] == ["2026-11-26T12", "2026-11-26T13"]

    # The same journal replayed again (a crash before it was emptied) changes nothing.
    journal.write_bytes(saved)
    tick.now += RETRY
    rt.store.status()  # the periodic check while on Postgres runs the replay too
    assert journal.stat().st_size == 0
    assert (pg_signals(dsn), pg_snapshots(dsn)) == (signals, snapshots)


def test_a_newer_value_in_postgres_is_not_overwritten_by_the_replay(
        rt: Runtime, cluster: ThrowawayCluster, dsn: str, clock: FixedClock, tick: FakeMonotonic) -> None:
    run = runner(rt)
    run("signals_tool", "ingest", signals=[incident("INC-8")])
    go_down(rt, cluster)
    clock.advance(minutes=10)
    run("signals_tool", "ingest", signals=[alert("fp-9"), incident("INC-8", status="mitigated")])
    outage_snap = run("risk_history_tool", "snapshot")  # slot 12:00, computed 12:10
    assert outage_snap["backend"] == "jsonl" and outage_snap["written"] == 1

    cluster.start()  # another process, on Postgres already, writes before this one retries
    clock.advance(minutes=10)
    other = PostgresSignalStore(dsn)
    try:
        other.upsert_many([parse_signal(alert("fp-9", status="resolved", ends_at="2026-11-26T12:05:00Z"))])
        newer = RiskSnapshot(env="prod", service="gateway", slot=datetime(2026, 11, 26, 12, tzinfo=UTC), score=7.0,
                             band="low", parts={"other": 7.0}, computed_at=clock.now())
        assert other.put_snapshots([newer]) == 1
    finally:
        other.close()
    tick.now += RETRY
    assert rt.store.status().backend == "postgres"

    signals = pg_signals(dsn)
    assert signals[("alert", "fp-9")]["status"] == "resolved"  # the delayed "firing" is older news
    assert signals[("incident", "INC-8")]["status"] == "mitigated"  # the outage's update is the newer one
    assert pg_snapshots(dsn) == {newer.key: (7.0, clock.now())}  # computed later than the outage's


def test_a_write_that_slips_in_after_the_switch_is_replayed_before_postgres_serves_it(
        rt: Runtime, cluster: ThrowawayCluster, dsn: str, root: Path, clock: FixedClock, tick: FakeMonotonic) -> None:
    """Another process, still on its fallback, journals after this one replayed and switched
    back: the next caller of this process's signal store replays it before Postgres answers."""
    go_down(rt, cluster)
    settings = auto_settings(root, dsn)
    late = build_runtime(settings, clock=clock,
                         store=AutoBacklogStore(settings, clock=clock, monotonic=FakeMonotonic()))
    try:
        come_back(rt, cluster, tick)
        assert late.signals.backend == "jsonl"  # its own retry is not due yet
        late.signals.upsert_many([parse_signal(incident("INC-LATE"))])
        assert (root / "ops" / "signals" / JOURNAL).stat().st_size > 0
        assert [s["id"] for s in runner(rt)("signals_tool", "list")["signals"]] == ["INC-LATE"]
    finally:
        late.close()
    assert set(pg_signals(dsn)) == {("incident", "INC-LATE")}


CHILD = """
import os, signal, sys
from services.router.clock import FixedClock, parse_utc
from services.router.runtime import build_runtime
from services.router.settings import Settings
from services.router import files
hits = [0]
def hook(name):
    if name == "signals_replay:after_op":
        hits[0] += 1
        if hits[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
files.crash_hook = hook
settings = Settings(REPO_ROOT=sys.argv[1], BACKLOG_BACKEND="auto", BACKLOG_POSTGRES_DSN=os.environ["AUTO_DSN"],
                    POSTGRES_DSN=None)
rt = build_runtime(settings, clock=FixedClock(parse_utc("2026-11-26T14:00:00Z")))
rt.execute("t", "signals_tool", "list", {})  # the signal store replays the journal before answering
"""


def test_a_replay_killed_midway_then_run_again_gives_the_same_result(
        rt: Runtime, cluster: ThrowawayCluster, dsn: str, clock: FixedClock, root: Path) -> None:
    run = runner(rt)
    run("signals_tool", "ingest", signals=[alert("fp-1"), incident("INC-1")])
    go_down(rt, cluster)
    try:
        clock.advance(minutes=5)
        run("signals_tool", "ingest", signals=[alert("fp-1", status="resolved", ends_at="2026-11-26T12:01:00Z"),
                                               incident("INC-1", status="mitigated")])
        run("signals_tool", "ingest", signals=[alert("fp-1"), incident("INC-2")])  # a late "firing": stale
        run("risk_history_tool", "snapshot")
        clock.advance(minutes=20)
        run("signals_tool", "ingest", signals=[incident("INC-1", status="resolved",
                                                        resolved_at="2026-11-26T12:20:00Z")])
        run("risk_history_tool", "snapshot")  # the same slot, a later score
        rt.close()
    finally:
        cluster.start()
    journal = root / "ops" / "signals" / JOURNAL
    backup = journal.read_bytes()
    env = {**os.environ, "AUTO_DSN": dsn, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", CHILD, str(root), "3"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=False)
    assert child.returncode == -9, child.stderr
    assert pg_signals(dsn)[("incident", "INC-1")]["status"] == "mitigated"  # three requests landed
    assert journal.read_bytes() == backup  # kept whole until a complete replay

    again = build_runtime(auto_settings(root, dsn), clock=clock)  # replays from the start
    try:
        runner(again)("signals_tool", "list")
        assert journal.stat().st_size == 0
        signals, snapshots = pg_signals(dsn), pg_snapshots(dsn)
        assert signals[("alert", "fp-1")]["status"] == "resolved"
        assert {k: signals[("incident", k)]["status"] for k in ("INC-1", "INC-2")} == {
            "INC-1": "resolved", "INC-2": "open"}
        assert [computed for _, computed in snapshots.values()] == [clock.now()]
        # and the whole journal once more: still the same
        journal.write_bytes(backup)
        runner(again)("signals_tool", "list")
        assert (pg_signals(dsn), pg_snapshots(dsn)) == (signals, snapshots)
    finally:
        again.close()


def test_without_a_dsn_nothing_is_journaled(root: Path, clock: FixedClock) -> None:
    """Plain JSONL is not an outage: there is no Postgres to replay into."""
    rt = build_runtime(auto_settings(root, None), clock=clock)
    try:
        out = runner(rt)("signals_tool", "ingest", signals=[incident()])
        assert out["backend"] == "jsonl" and runner(rt)("risk_history_tool", "snapshot")["written"] == 1
        assert not (root / "ops" / "signals" / JOURNAL).exists()
    finally:
        rt.close()


def test_keep_newer_never_replaces_a_snapshot_computed_later(signal_store: SignalStore) -> None:
    """The replay's snapshot rule on every backend; without ``keep_newer`` a re-run replaces."""
    slot = datetime(2026, 11, 26, 12, tzinfo=UTC)

    def snap(score: float, minute: int) -> RiskSnapshot:
        return RiskSnapshot(env="prod", service="gateway", slot=slot, score=score, band="low",
                            computed_at=slot.replace(minute=minute))

    assert signal_store.put_snapshots([snap(10.0, 30)]) == 1
    assert signal_store.put_snapshots([snap(20.0, 10)], keep_newer=True) == 0
    assert signal_store.put_snapshots([snap(20.0, 40)], keep_newer=True) == 1
    assert signal_store.put_snapshots([snap(30.0, 5)]) == 1
    assert [(s.score, s.computed_at.minute) for s in signal_store.snapshots()] == [(30.0, 5)]


def test_a_signal_write_that_meets_the_outage_first_falls_back_like_a_backlog_write(
        rt: Runtime, cluster: ThrowawayCluster, dsn: str, root: Path, tick: FakeMonotonic) -> None:
    """No backlog call noticed the outage: the signal write itself fails on Postgres, is served
    by JSONL and journaled (not refused with 503), and the whole process is degraded with it."""
    run = runner(rt)
    assert run("signals_tool", "ingest", signals=[incident("INC-A")])["backend"] == "postgres"
    cluster.stop()
    out = run("signals_tool", "ingest", signals=[incident("INC-B")])
    assert out["backend"] == "jsonl" and out["counts"]["created"] == 1
    assert (rt.store.status().backend, rt.store.status().degraded) == ("jsonl", True)
    assert (root / "ops" / "signals" / JOURNAL).stat().st_size > 0
    come_back(rt, cluster, tick)
    assert set(pg_signals(dsn)) == {("incident", "INC-A"), ("incident", "INC-B")}
