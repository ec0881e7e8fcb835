"""Risk and pressure scores from signals — pure functions of (signals, snapshots, time, policy).

Both scores are weighted sums capped at 100 that keep their parts, so a digest can say *why*
a service ranks where it does. Every function takes the moment ``at`` it describes and reads
each signal's state *at that moment* (an incident resolved on Tuesday was open on Monday), so
hourly snapshots can be backfilled for past hours from today's records.

Windows are half-open on the left: "the last 7 days" at ``at`` is ``(at - 7d, at]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.router.signals.models import Alert, AnySignal, Deploy, Followup, Incident, SloBreach, Vulnerability
from services.router.signals.risk_policy import Bands, PressureWeights, RiskWeights
from services.router.signals.store import RiskSnapshot

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
MAX_SCORE = 100.0
PRESSURE_SIGNALS = ("risk_avg_7d", "incidents_30d", "recurring_incidents_30d", "slo_breaches_7d",
                    "overdue_followups", "open_critical_vulns", "failed_deploys_7d")
SEVERITY_RANK = {"sev1": 0, "sev2": 1, "sev3": 2, "sev4": 3, "critical": 0, "high": 1, "warning": 1,
                 "medium": 2, "info": 2, "low": 3}


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    points: float
    count: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "points": self.points, "count": self.count, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    band: str
    parts: tuple[Part, ...]
    uncapped: float

    def points(self) -> dict[str, float]:
        return {p.name: p.points for p in self.parts}


def r1(value: float) -> float:
    return round(value + 0.0, 1)


def total(parts: Sequence[Part], bands: Bands) -> Score:
    uncapped = r1(sum(p.points for p in parts))
    value = min(MAX_SCORE, uncapped)
    return Score(value=value, band=bands.band(value), parts=tuple(parts), uncapped=uncapped)


# -- state of a signal at a moment ----------------------------------------------------------
def incident_state(inc: Incident, at: datetime) -> str | None:
    """``open``/``mitigated``/``resolved`` at ``at``; None before it started."""
    if inc.started_at > at:
        return None
    if inc.resolved_at is not None:
        return "resolved" if inc.resolved_at <= at else "open"
    return inc.status


def alert_firing(alert: Alert, at: datetime) -> bool:
    return alert.starts_at <= at and (alert.ends_at is None or alert.ends_at > at)


def vuln_open(vuln: Vulnerability, at: datetime) -> bool:
    if vuln.detected_at > at:
        return False
    if vuln.status == "fixed":
        return vuln.fixed_at is not None and vuln.fixed_at > at  # fixed at an unknown time: not open
    return True


def followup_overdue(fu: Followup, at: datetime) -> bool:
    if fu.created_at is not None and fu.created_at > at:
        return False
    if fu.due_date >= at.date():
        return False
    if fu.status == "done":
        return fu.done_at is not None and fu.done_at > at
    return True


def within(moment: datetime, at: datetime, span: timedelta) -> bool:
    return at - span < moment <= at


def deploy_failed(dep: Deploy) -> bool:
    return dep.result in ("failed", "rolled_back")


def burn_factor(breach: SloBreach, cap: float) -> float:
    return min(max(breach.burn_rate, 1.0), cap)


# -- risk -----------------------------------------------------------------------------------
def risk_score(signals: Iterable[AnySignal], at: datetime, weights: RiskWeights, bands: Bands) -> Score:
    """One service's risk at ``at`` from what is open then."""
    incidents: dict[str, list[float]] = {}
    vulns: dict[str, int] = {}
    alerts: dict[str, int] = {}
    breaches: list[float] = []
    overdue = failed = 0
    for s in signals:
        if isinstance(s, Incident):
            state = incident_state(s, at)
            if state in ("open", "mitigated"):
                share = 1.0 if state == "open" else weights.mitigated_factor
                incidents.setdefault(f"{s.severity} {state}", []).append(weights.incident_open[s.severity] * share)
        elif isinstance(s, Vulnerability) and vuln_open(s, at):
            vulns[s.severity] = vulns.get(s.severity, 0) + 1
        elif isinstance(s, Alert) and alert_firing(s, at):
            alerts[s.severity] = alerts.get(s.severity, 0) + 1
        elif isinstance(s, SloBreach) and within(s.at, at, DAY):
            breaches.append(burn_factor(s, weights.max_burn_factor))
        elif isinstance(s, Followup) and followup_overdue(s, at):
            overdue += 1
        elif isinstance(s, Deploy) and deploy_failed(s) and within(s.at, at, DAY):
            failed += 1
    parts = [
        Part("incidents", r1(sum(sum(v) for v in incidents.values())), sum(len(v) for v in incidents.values()),
             ", ".join(f"{len(v)} {k} ({r1(v[0]):g} each)" for k, v in sorted(incidents.items()))),
        severity_part("vulnerabilities", vulns, weights.vulnerability_open, "open"),
        severity_part("alerts", alerts, weights.alert_firing, "firing"),
        Part("slo_breaches", r1(sum(weights.slo_breach_24h * f for f in breaches)), len(breaches),
             f"{len(breaches)} in 24h x {weights.slo_breach_24h:g} x burn factor "
             f"({', '.join(f'{f:g}' for f in breaches)})" if breaches else ""),
        Part("followups", r1(overdue * weights.followup_overdue), overdue,
             f"{overdue} overdue x {weights.followup_overdue:g}" if overdue else ""),
        Part("deploys", r1(failed * weights.deploy_failed_24h), failed,
             f"{failed} failed/rolled back in 24h x {weights.deploy_failed_24h:g}" if failed else ""),
    ]
    return total(parts, bands)


def severity_part(name: str, counts: dict[str, int], weights: dict[str, float], state: str) -> Part:
    ordered = sorted(counts.items(), key=lambda kv: SEVERITY_RANK.get(kv[0], 9))
    return Part(
        name, r1(sum(weights[sev] * n for sev, n in counts.items())), sum(counts.values()),
        ", ".join(f"{n} {sev} {state} ({weights[sev]:g} each)" for sev, n in ordered),
    )


# -- history figures --------------------------------------------------------------------------
def latest_at(snaps: Sequence[RiskSnapshot], at: datetime) -> RiskSnapshot | None:
    """The newest snapshot at or before ``at`` (``snaps`` sorted by slot)."""
    best = None
    for snap in snaps:
        if snap.slot > at:
            break
        best = snap
    return best


def delta(snaps: Sequence[RiskSnapshot], at: datetime, horizon: timedelta) -> float | None:
    """Latest score minus the score ``horizon`` earlier; None without two snapshots to compare.

    The baseline is the newest snapshot at least ``horizon`` older than the latest; when
    history is shorter than that, the oldest snapshot within the horizon stands in.
    """
    latest = latest_at(snaps, at)
    if latest is None:
        return None
    older = [s for s in snaps if s.slot < latest.slot]
    if not older:
        return None
    baseline = latest_at(older, latest.slot - horizon)
    if baseline is None:
        baseline = next((s for s in older if s.slot >= latest.slot - horizon), None)
    return None if baseline is None else r1(latest.score - baseline.score)


# -- pressure ---------------------------------------------------------------------------------
def recurring_incidents(incidents: Sequence[Incident]) -> list[Incident]:
    """Incidents that share a root-cause tag or alertname with an earlier one (time order)."""
    seen_causes: set[str] = set()
    seen_alerts: set[str] = set()
    repeats: list[Incident] = []
    for inc in sorted(incidents, key=lambda i: (i.started_at, i.id)):
        if (inc.root_cause and inc.root_cause in seen_causes) or (inc.alertname and inc.alertname in seen_alerts):
            repeats.append(inc)
        if inc.root_cause:
            seen_causes.add(inc.root_cause)
        if inc.alertname:
            seen_alerts.add(inc.alertname)
    return repeats


def pressure_signals(
    signals: Sequence[AnySignal], snaps: Sequence[RiskSnapshot], at: datetime, live_risk: float,
) -> dict[str, Any]:
    """The DESIGN §6 signals of one service at ``at``.

    Risk figures come from the hourly snapshots of the last 7 days; a service without any yet
    uses its live risk score, so a first digest is not blind.
    """
    week = [s for s in snaps if within(s.slot, at, WEEK)]
    scores = [s.score for s in week] or [live_risk]
    incidents = [s for s in signals if isinstance(s, Incident) and within(s.started_at, at, MONTH)]
    return {
        "risk_avg_7d": r1(sum(scores) / len(scores)),
        "risk_max_7d": r1(max(scores)),
        "risk_delta_7d": delta(snaps, at, WEEK) or 0.0,
        "incidents_30d": len(incidents),
        "recurring_incidents_30d": len(recurring_incidents(incidents)),
        "slo_breaches_7d": sum(1 for s in signals if isinstance(s, SloBreach) and within(s.at, at, WEEK)),
        "overdue_followups": sum(1 for s in signals if isinstance(s, Followup) and followup_overdue(s, at)),
        "open_critical_vulns": sum(
            1 for s in signals if isinstance(s, Vulnerability) and s.severity == "critical" and vuln_open(s, at)),
        "failed_deploys_7d": sum(
            1 for s in signals if isinstance(s, Deploy) and deploy_failed(s) and within(s.at, at, WEEK)),
    }


def pressure_score(figures: dict[str, Any], weights: PressureWeights, bands: Bands) -> Score:
    parts = []
    for name in PRESSURE_SIGNALS:
        weight = float(getattr(weights, name))
        value = float(figures[name])
        parts.append(Part(name, r1(weight * value), value, f"{value:g} x {weight:g}" if value else ""))
    return total(parts, bands)


def evidence(signals: Sequence[AnySignal], at: datetime, limit: int) -> list[dict[str, str]]:
    """What a person should open first: the signals behind the figures, most severe first.

    Taken round-robin across kinds, so a long list of incidents cannot hide the open
    critical vulnerability that also drives the score.
    """
    incidents = [s for s in signals if isinstance(s, Incident) and within(s.started_at, at, MONTH)]
    incidents.sort(key=lambda s: (SEVERITY_RANK[s.severity], -s.started_at.timestamp()))
    breaches = [s for s in signals if isinstance(s, SloBreach) and within(s.at, at, WEEK)]
    breaches.sort(key=lambda s: -s.burn_rate)
    overdue = [s for s in signals if isinstance(s, Followup) and followup_overdue(s, at)]
    overdue.sort(key=lambda s: s.due_date)
    deploys = [s for s in signals if isinstance(s, Deploy) and deploy_failed(s) and within(s.at, at, WEEK)]
    deploys.sort(key=lambda s: -s.at.timestamp())
    groups: list[Sequence[AnySignal]] = [
        incidents,
        [s for s in signals if isinstance(s, Vulnerability) and s.severity == "critical" and vuln_open(s, at)],
        breaches,
        overdue,
        deploys,
        [s for s in signals if isinstance(s, Alert) and s.severity == "critical" and alert_firing(s, at)],
    ]
    picked: list[AnySignal] = []
    depth = 0
    while len(picked) < limit and any(depth < len(g) for g in groups):
        picked.extend(g[depth] for g in groups if depth < len(g))
        depth += 1
    return [evidence_ref(s) for s in picked[:limit]]


def evidence_ref(signal: AnySignal) -> dict[str, str]:
    return {"kind": signal.kind_name, "ref": signal.id, "title": signal.label, "source": signal.source}
