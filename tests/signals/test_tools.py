"""risk_history_tool and signals_tool actions through the registry, as the router and the scheduler call them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.router.clock import FixedClock
from services.router.errors import ValidationFailed
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.signals.backend import open_signal_store
from services.router.signals.store import MemorySignalStore
from services.router.signals.store_jsonl import JsonlSignalStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.memory import MemoryBacklogStore
from services.router.tools.catalog import build_registry
from tests.signals.builders import deploy, incident, vulnerability
from tests.signals.conftest import NOW, Call


def test_entitlements_are_declared() -> None:
    declared = {(s.tool, s.action): s.entitlement for s in build_registry().specs()
                if s.tool in ("risk_history_tool", "architecture_pressure_tool", "signals_tool")}
    assert declared == {
        ("risk_history_tool", "snapshot"): "tools.risk.write",
        ("risk_history_tool", "digest"): "tools.risk.write",
        ("risk_history_tool", "cleanup"): "tools.risk.write",  # the scheduler's risk_history_cleanup job
        ("risk_history_tool", "history"): "tools.risk.read",
        ("risk_history_tool", "reports"): "tools.risk.read",
        ("risk_history_tool", "report"): "tools.risk.read",
        ("architecture_pressure_tool", "digest"): "tools.pressure.write",
        ("architecture_pressure_tool", "latest"): "tools.pressure.read",
        ("architecture_pressure_tool", "reports"): "tools.pressure.read",
        ("architecture_pressure_tool", "report"): "tools.pressure.read",
        ("signals_tool", "ingest"): "tools.signals.write",
        ("signals_tool", "alertmanager"): "tools.signals.write",
        ("signals_tool", "list"): "tools.signals.read",
    }


def test_snapshot_once_per_service_and_hour(call: Call, clock: FixedClock) -> None:
    call("signals_tool", "ingest", signals=[incident(severity="sev1"), deploy(service="auth"),
                                            incident("INC-S", env="staging")])
    first = call("risk_history_tool", "snapshot", env="prod")
    assert first["slot"] == "2026-11-26T12:00:00.000000Z" and first["written"] == 2
    assert {(s["service"], s["score"]) for s in first["snapshots"]} == {("gateway", 40.0), ("auth", 10.0)}
    clock.advance(minutes=30)
    assert call("risk_history_tool", "snapshot", env="prod")["written"] == 0, "same hour, same scores"
    call("signals_tool", "ingest", signals=[vulnerability()])
    rerun = call("risk_history_tool", "snapshot", env="prod")
    assert (rerun["slot"], rerun["written"], rerun["unchanged"]) == (first["slot"], 1, 1)
    history = call("risk_history_tool", "history", env="prod", service="gateway", days=1)
    assert [p["score"] for p in history["points"]] == [60.0], "the re-run replaced its hour"
    assert call("risk_history_tool", "snapshot")["count"] == 3, "without env: every env"


def test_snapshot_dry_run_and_backfill(call: Call) -> None:
    call("signals_tool", "ingest", signals=[incident(started_at="2026-11-25T00:00:00Z", status="resolved",
                                                     resolved_at="2026-11-25T06:00:00Z")])
    planned = call("risk_history_tool", "snapshot", dry_run=True, as_of="2026-11-25T03:20:00Z")
    assert planned["written"] == 0 and planned["snapshots"][0]["score"] == 25.0
    assert call("risk_history_tool", "history", env="prod", service="gateway")["count"] == 0
    for hour in range(24):
        call("risk_history_tool", "snapshot", as_of=(NOW - timedelta(hours=36 - hour)).isoformat())
    history = call("risk_history_tool", "history", env="prod", service="gateway", days=2)
    scores = [p["score"] for p in history["points"]]
    assert len(scores) == 24 and scores.count(25.0) == 6, "open from 00:00 to 06:00 on 11-25"
    assert history["summary"] == {"avg": 6.2, "max": 25.0, "min": 0.0, "latest": 0.0}
    with pytest.raises(ValidationFailed):
        call("risk_history_tool", "snapshot", as_of="2026-11-25T03:00:00")  # naive


def test_cleanup_uses_the_policy_retention(call: Call, clock: FixedClock) -> None:
    call("signals_tool", "ingest", signals=[incident()])
    for days in (120, 91, 89, 0):
        call("risk_history_tool", "snapshot", as_of=(NOW - timedelta(days=days)).isoformat())
    planned = call("risk_history_tool", "cleanup", dry_run=True)
    assert (planned["retention_days"], planned["would_remove"], planned["removed"]) == (90, 2, 0)
    assert call("risk_history_tool", "cleanup")["removed"] == 2
    assert call("risk_history_tool", "cleanup", retention_days=30)["removed"] == 1
    assert call("risk_history_tool", "history", env="prod", service="gateway", days=366)["count"] == 1


def test_ingest_reports_each_item(call: Call) -> None:
    out = call("signals_tool", "ingest", signals=[incident(), {"kind": "incident", "id": "bad"}, deploy()])
    assert out["counts"] == {"accepted": 2, "rejected": 1, "created": 2, "updated": 0, "unchanged": 0}
    assert out["accepted"] == [{"kind": "incident", "id": "INC-1", "action": "created"},
                               {"kind": "deploy", "id": "DEP-1", "action": "created"}]
    assert out["rejected"][0]["index"] == 1 and "title: required field is missing" in out["rejected"][0]["reason"]
    dry = call("signals_tool", "ingest", signals=[incident(status="mitigated")], dry_run=True)
    assert dry["accepted"][0]["action"] == "updated"
    assert call("signals_tool", "list", kind="incident")["signals"][0]["status"] == "open"
    with pytest.raises(ValidationFailed):
        call("signals_tool", "ingest", signals=[{}] * 5001)


def test_store_follows_the_backlog_backend(runtime: Runtime, settings: Settings, root: Path,
                                          clock: FixedClock) -> None:
    ctx = runtime.context("t")
    assert isinstance(ctx.signals, MemorySignalStore)
    assert ctx.signals is runtime.context("u").signals, "opened once per runtime"
    other = build_runtime(Settings(REPO_ROOT=root), clock=clock, store=MemoryBacklogStore(clock=clock))
    assert other.signals is not runtime.signals
    jsonl = open_signal_store(settings, JsonlBacklogStore(root / "ops" / "backlog", clock=clock), clock)
    assert isinstance(jsonl, JsonlSignalStore) and jsonl.signals_dir == root / "ops" / "signals"
    assert jsonl.risk_dir == root / "ops" / "risk"
    jsonl.close()


def test_postgres_backlog_gets_postgres_signals(request: pytest.FixtureRequest, root: Path, clock: FixedClock) -> None:
    import psycopg

    from services.router.runtime import build_runtime
    from services.router.signals.store_postgres import PostgresSignalStore
    from services.router.stores.postgres import PostgresBacklogStore
    from tests.pg_support import session_dsn

    dsn = session_dsn(request)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE signals, risk_snapshots")
    settings = Settings(REPO_ROOT=root, BACKLOG_BACKEND="postgres", BACKLOG_POSTGRES_DSN=dsn)
    rt = build_runtime(settings, clock=clock, store=PostgresBacklogStore(dsn, clock=clock))
    try:
        assert isinstance(rt.context("t").signals, PostgresSignalStore)
        rt.execute("t", "signals_tool", "ingest", {"signals": [incident(severity="sev1"), vulnerability()]})
        out = rt.execute("t", "risk_history_tool", "snapshot", {})
        assert (out["backend"], out["written"], out["snapshots"][0]["score"]) == ("postgres", 1, 60.0)
        digest = rt.execute("t", "architecture_pressure_tool", "digest", {"env": "prod"})
        assert digest["envs"]["prod"][0]["service"] == "gateway"
    finally:
        rt.close()
