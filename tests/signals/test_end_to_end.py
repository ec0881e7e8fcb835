"""Signals → hourly snapshots → platform digest → weekly generation produces the expected items."""

from __future__ import annotations

from datetime import timedelta

from services.router.runtime import Runtime
from tests.signals.builders import deploy, followup, incident, slo_breach, vulnerability
from tests.signals.conftest import NOW, Call


def platform_signals() -> list[dict[str, object]]:
    """gateway trips every weekly category; auth trips none; staging is another env entirely."""
    return [
        incident("INC-1", severity="sev1", root_cause="db-pool"),
        incident("INC-2", severity="sev2", status="resolved", started_at="2026-11-12T10:00:00Z",
                 resolved_at="2026-11-12T12:00:00Z", root_cause="db-pool"),
        incident("INC-3", severity="sev2", status="resolved", started_at="2026-11-18T10:00:00Z",
                 resolved_at="2026-11-18T12:00:00Z", root_cause="db-pool"),
        vulnerability("V-1"),
        slo_breach("SLO-1", at="2026-11-25T09:00:00Z"),
        followup("FU-1", due_date="2026-11-19"), followup("FU-2", due_date="2026-11-20"),
        followup("FU-3", due_date="2026-11-21"),
        deploy("DEP-1", at="2026-11-24T08:00:00Z"), deploy("DEP-2", result="rolled_back", at="2026-11-25T08:00:00Z"),
        deploy("DEP-3", at="2026-11-26T08:00:00Z"),
        incident("INC-A", service="auth", severity="sev4"),
        vulnerability("V-S", env="staging"),
    ]


def test_signals_to_backlog_items(runtime: Runtime, call: Call) -> None:
    assert ("backlog_tool", "auto_generate_weekly") in {(s.tool, s.action) for s in runtime.registry.specs()}
    assert call("signals_tool", "ingest", signals=platform_signals())["counts"]["rejected"] == 0
    for back in range(24 * 7 - 1, -1, -6):
        call("risk_history_tool", "snapshot", env="prod", as_of=(NOW - timedelta(hours=back)).isoformat())
    digest = call("architecture_pressure_tool", "digest", env="prod")
    assert digest["envs"]["prod"][0]["service"] == "gateway"

    result = call("backlog_tool", "auto_generate_weekly", env="prod")
    items = call("backlog_tool", "list", env="prod", limit=100)["items"]
    keys = sorted(i["dedupe_key"] for i in items)
    assert keys == [f"platform_backlog:2026-W48:prod:gateway:{category}" for category in
                    ("arch_review", "deploy_safety", "followup_debt", "security", "slo_hardening")]
    security = next(i for i in items if i["category"] == "security")
    assert security["priority"] == "P0" and security["source"] == "weekly_pressure_digest"
    assert any("V-1" in ref for ref in security["evidence_refs"]), "evidence refs reach the items"
    assert result is not None

    again = call("backlog_tool", "auto_generate_weekly", env="prod")
    assert len(call("backlog_tool", "list", env="prod", limit=100)["items"]) == len(items)
    assert again is not None
