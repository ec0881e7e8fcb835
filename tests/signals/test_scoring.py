"""Risk and pressure scores against hand-computed expectations (weights: config/risk_policy.yml)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.router.signals.digests import change
from services.router.signals.models import AnySignal, Incident
from services.router.signals.risk_policy import Bands, RiskPolicy
from services.router.signals.scoring import (
    delta,
    evidence,
    pressure_score,
    pressure_signals,
    recurring_incidents,
    risk_score,
)
from services.router.signals.store import RiskSnapshot
from tests.signals.builders import alert, deploy, followup, incident, signals, slo_breach, vulnerability

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
POLICY = RiskPolicy()  # the defaults equal the shipped config/risk_policy.yml (checked in test_policy_file)


def fixture() -> list[AnySignal]:
    """A sev1 open incident, two critical vulns, overdue follow-ups, a burning SLO, failed deploys."""
    return signals(
        incident("INC-1", severity="sev1", started_at="2026-11-26T10:00:00Z", root_cause="db-pool"),
        incident("INC-0", severity="sev2", status="resolved", started_at="2026-11-10T10:00:00Z",
                 resolved_at="2026-11-10T12:00:00Z", root_cause="db-pool"),
        incident("INC-5", severity="sev3", status="resolved", started_at="2026-11-15T10:00:00Z",
                 resolved_at="2026-11-15T11:00:00Z", root_cause="config", alertname="HighErrorRate"),
        incident("INC-6", severity="sev3", status="resolved", started_at="2026-11-20T10:00:00Z",
                 resolved_at="2026-11-20T11:00:00Z", alertname="HighErrorRate"),
        incident("INC-OLD", severity="sev2", status="resolved", started_at="2026-10-01T10:00:00Z",
                 resolved_at="2026-10-01T11:00:00Z", root_cause="db-pool"),
        vulnerability("V-1"), vulnerability("V-2"),
        vulnerability("V-3", severity="critical", status="fixed", fixed_at="2026-11-05T00:00:00Z"),
        followup("FU-1", due_date="2026-11-20"), followup("FU-2", due_date="2026-11-25"),
        followup("FU-3", due_date="2026-11-30"),
        followup("FU-4", due_date="2026-11-10", status="done", done_at="2026-11-12T00:00:00Z"),
        slo_breach("SLO-1", burn_rate=2.0, at="2026-11-26T09:00:00Z"),
        slo_breach("SLO-2", burn_rate=14.4, at="2026-11-24T09:00:00Z"),
        deploy("DEP-1", result="failed", at="2026-11-26T08:00:00Z"),
        deploy("DEP-2", result="rolled_back", at="2026-11-22T08:00:00Z"),
        deploy("DEP-3", result="success", at="2026-11-26T07:00:00Z"),
        deploy("DEP-OLD", result="failed", at="2026-11-10T08:00:00Z"),
        alert("A-1", severity="warning"),
        alert("A-2", severity="critical", status="resolved", ends_at="2026-11-26T11:30:00Z"),
    )


def score_now(items: list[AnySignal], at: datetime = NOW) -> tuple[float, str, dict[str, float], float]:
    s = risk_score(items, at, POLICY.risk.weights, POLICY.risk.bands)
    return s.value, s.band, s.points(), s.uncapped


def test_risk_of_the_fixture_is_capped_with_its_parts() -> None:
    value, band, parts, uncapped = score_now(fixture())
    # sev1 open 40; 2 critical vulns x 20; 2 overdue follow-ups x 5; SLO 10 x burn 2;
    # failed deploy in 24 h 10; firing warning alert 5 (the resolved critical one counts 0)
    assert parts == {"incidents": 40.0, "vulnerabilities": 40.0, "alerts": 5.0, "slo_breaches": 20.0,
                     "followups": 10.0, "deploys": 10.0}
    assert uncapped == 125.0 and value == 100.0 and band == "critical"


def test_risk_uncapped_sum_mitigation_and_burn_cap() -> None:
    items = signals(
        incident(severity="sev2", status="mitigated"),  # 25 x 0.5
        vulnerability(),  # 20
        followup(),  # 5 (due 2026-11-20, open)
        slo_breach(burn_rate=14.4),  # 10 x min(14.4, 3)
    )
    assert score_now(items) == (67.5, "high", {"incidents": 12.5, "vulnerabilities": 20.0, "alerts": 0.0,
                                               "slo_breaches": 30.0, "followups": 5.0, "deploys": 0.0}, 67.5)
    assert score_now([])[:2] == (0.0, "low")


def test_risk_parts_explain_themselves() -> None:
    s = risk_score(fixture(), NOW, POLICY.risk.weights, POLICY.risk.bands)
    details = {p.name: p.detail for p in s.parts}
    assert details["incidents"] == "1 sev1 open (40 each)"
    assert details["vulnerabilities"] == "2 critical open (20 each)"
    assert details["followups"] == "2 overdue x 5"


def test_state_at_a_past_moment_backfills_correctly() -> None:
    items = signals(
        incident(severity="sev1", status="resolved", started_at="2026-11-20T00:00:00Z",
                 resolved_at="2026-11-21T00:00:00Z"),
        vulnerability(status="fixed", detected_at="2026-11-01T00:00:00Z", fixed_at="2026-11-21T00:00:00Z"),
        followup(due_date="2026-11-18", status="done", done_at="2026-11-21T00:00:00Z"),
        alert(status="resolved", starts_at="2026-11-20T10:00:00Z", ends_at="2026-11-21T00:00:00Z"),
    )
    during = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert score_now(items, during)[2] == {"incidents": 40.0, "vulnerabilities": 20.0, "alerts": 15.0,
                                           "slo_breaches": 0.0, "followups": 5.0, "deploys": 0.0}
    assert score_now(items, datetime(2026, 11, 21, 12, tzinfo=UTC))[0] == 0.0
    assert score_now(items, datetime(2026, 10, 1, tzinfo=UTC))[0] == 0.0, "nothing existed yet"


def test_bands_boundaries() -> None:
    bands = Bands()
    assert [bands.band(v) for v in (0, 24.9, 25, 49.9, 50, 74.9, 75, 100)] == [
        "low", "low", "medium", "medium", "high", "high", "critical", "critical"]


def test_recurrence_counts_repeats_of_an_earlier_incident_in_the_window() -> None:
    incidents = [s for s in fixture() if isinstance(s, Incident) and s.id != "INC-OLD"]
    assert [i.id for i in recurring_incidents(incidents)] == ["INC-6", "INC-1"]
    three = signals(incident("a", root_cause="x", started_at="2026-11-01T00:00:00Z"),
                    incident("b", root_cause="x", started_at="2026-11-02T00:00:00Z"),
                    incident("c", root_cause="x", started_at="2026-11-03T00:00:00Z"),
                    incident("d", started_at="2026-11-04T00:00:00Z"))  # no tag, no alertname: never recurring
    assert [i.id for i in recurring_incidents([i for i in three if isinstance(i, Incident)])] == ["b", "c"]


def snaps(*points: tuple[timedelta, float]) -> list[RiskSnapshot]:
    return sorted((RiskSnapshot(env="prod", service="gateway", slot=NOW - ago, score=score,
                                band=POLICY.risk.bands.band(score), computed_at=NOW - ago) for ago, score in points),
                  key=lambda s: s.slot)


def test_pressure_signals_and_score_by_hand() -> None:
    history = snaps((timedelta(days=7), 20.0), (timedelta(days=3), 10.0), (timedelta(days=1), 20.0),
                    (timedelta(0), 30.0))
    figures = pressure_signals(fixture(), history, NOW, live_risk=100.0)
    assert figures == {
        "risk_avg_7d": 20.0,  # (10 + 20 + 30) / 3: the snapshot exactly 7 days old is outside (t-7d, t]
        "risk_max_7d": 30.0,
        "risk_delta_7d": 10.0,  # 30 now - 20 seven days earlier
        "incidents_30d": 4,  # INC-OLD is older than 30 days
        "recurring_incidents_30d": 2,  # INC-6 repeats HighErrorRate, INC-1 repeats db-pool
        "slo_breaches_7d": 2,
        "overdue_followups": 2,
        "open_critical_vulns": 2,  # V-3 was fixed
        "failed_deploys_7d": 2,  # failed + rolled back; DEP-OLD is older, DEP-3 succeeded
    }
    score = pressure_score(figures, POLICY.pressure.weights, POLICY.pressure.bands)
    # 0.5x20 + 4x4 + 8x2 + 6x2 + 3x2 + 10x2 + 3x2 = 10 + 16 + 16 + 12 + 6 + 20 + 6
    assert score.value == 86.0 and score.band == "critical"
    assert score.points()["open_critical_vulns"] == 20.0
    assert next(p.detail for p in score.parts if p.name == "incidents_30d") == "4 x 4"


def test_pressure_without_snapshots_uses_the_live_risk() -> None:
    figures = pressure_signals([], [], NOW, live_risk=42.0)
    assert (figures["risk_avg_7d"], figures["risk_max_7d"], figures["risk_delta_7d"]) == (42.0, 42.0, 0.0)


def test_pressure_is_capped() -> None:
    figures = {"risk_avg_7d": 100, "incidents_30d": 30, "recurring_incidents_30d": 10, "slo_breaches_7d": 5,
               "overdue_followups": 9, "open_critical_vulns": 4, "failed_deploys_7d": 8}
    score = pressure_score(figures, POLICY.pressure.weights, POLICY.pressure.bands)
    assert score.value == 100.0 and score.uncapped > 100


@pytest.mark.parametrize(("history", "expected_24h", "expected_7d"), [
    # full history: the baselines are the snapshots 24 h and 7 d before now
    ([(timedelta(days=8), 5.0), (timedelta(days=7), 20.0), (timedelta(hours=25), 40.0), (timedelta(hours=24), 50.0),
      (timedelta(hours=1), 90.0)], 50.0, 80.0),
    # history shorter than 7 days: the oldest snapshot stands in for the 7-day baseline
    ([(timedelta(days=2), 30.0), (timedelta(hours=24), 60.0)], 40.0, 70.0),
    # no history: unknown, not zero
    ([], None, None),
])
def test_changes_over_24h_and_7d(history: list[tuple[timedelta, float]], expected_24h: float | None,
                                 expected_7d: float | None) -> None:
    points = snaps(*history)
    assert change(100.0, points, NOW, timedelta(days=1))[0] == expected_24h
    assert change(100.0, points, NOW, timedelta(days=7))[0] == expected_7d


def test_delta_between_snapshots() -> None:
    points = snaps((timedelta(days=7), 20.0), (timedelta(days=6), 25.0), (timedelta(0), 45.5))
    assert delta(points, NOW, timedelta(days=7)) == 25.5
    assert delta(points[:1], NOW, timedelta(days=7)) is None


def test_evidence_lists_what_drives_the_score_first() -> None:
    refs = evidence(fixture(), NOW, limit=6)
    assert [r["ref"] for r in refs] == ["INC-1", "V-1", "SLO-2", "FU-1", "DEP-1", "INC-0"]
    assert refs[0] == {"kind": "incident", "ref": "INC-1", "title": "Checkout 5xx spike",
                       "source": "https://inc.example/INC-1"}
    assert evidence(fixture(), NOW, limit=0) == []
