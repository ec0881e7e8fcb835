"""Build the risk snapshots and the two digests from the signal store (DESIGN §6).

Tools stay thin: they choose the moment and the env, call these builders, then write. Each
builder reads the store once per env and groups by service in memory, so an hourly snapshot
of a few dozen services is a couple of queries, not one per service.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from services.router.clock import iso_z
from services.router.domain.weeks import iso_week
from services.router.signals.models import AnySignal
from services.router.signals.risk_policy import RiskPolicy
from services.router.signals.scoring import (
    DAY,
    WEEK,
    evidence,
    latest_at,
    pressure_score,
    pressure_signals,
    r1,
    risk_score,
)
from services.router.signals.store import RiskSnapshot, SignalStore, hour_slot

PLATFORM_SCHEMA = "platform_priority_digest/v1"
RISK_SCHEMA = "risk_digest/v1"
HISTORY_SPAN = timedelta(days=15)  # enough snapshots for a 7-day baseline of a 7-day window
ELEVATED = ("high", "critical")
BAND_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def envs_of(store: SignalStore, env: str | None) -> list[str]:
    if env is not None:
        return [env]
    return sorted({e for e, _ in store.services()})


def by_service(signals: Iterable[AnySignal]) -> dict[str, list[AnySignal]]:
    grouped: dict[str, list[AnySignal]] = defaultdict(list)
    for s in signals:
        grouped[s.service].append(s)
    return grouped


def snaps_by_service(snaps: Iterable[RiskSnapshot]) -> dict[str, list[RiskSnapshot]]:
    grouped: dict[str, list[RiskSnapshot]] = defaultdict(list)
    for s in snaps:  # stores return them sorted by (env, service, slot)
        grouped[s.service].append(s)
    return grouped


# -- hourly snapshots -------------------------------------------------------------------------
def build_snapshots(
    store: SignalStore, policy: RiskPolicy, *, at: datetime, computed_at: datetime, env: str | None,
) -> list[RiskSnapshot]:
    """One snapshot per (env, service) for the hour of ``at``, scored from what is open at ``at``."""
    out: list[RiskSnapshot] = []
    for env_name in envs_of(store, env):
        grouped = by_service(store.query(env=env_name, until=at))
        for _, service in store.services(env_name):
            score = risk_score(grouped.get(service, []), at, policy.risk.weights, policy.risk.bands)
            out.append(RiskSnapshot(
                env=env_name, service=service, slot=hour_slot(at), score=score.value, band=score.band,
                parts=score.points(), computed_at=computed_at,
            ))
    return out


# -- daily risk digest ------------------------------------------------------------------------
def change(current: float, snaps: Sequence[RiskSnapshot], at: datetime, horizon: timedelta) -> tuple[
        float | None, str | None]:
    """Score now minus the score ``horizon`` ago (the newest snapshot at or before then).

    With less history than ``horizon``, the oldest snapshot after that moment stands in; with
    none at all the change is unknown (None), not zero.
    """
    target = at - horizon
    base = latest_at(snaps, target) or next((s for s in snaps if target < s.slot < at), None)
    if base is None:
        return None, None
    return r1(current - base.score), base.band


def build_risk_digest(
    store: SignalStore, policy: RiskPolicy, *, at: datetime, env: str | None,
) -> dict[str, dict[str, Any]]:
    """Per env: services by score (live at ``at``) with band, parts, 24 h / 7 d change, entries."""
    sections: dict[str, dict[str, Any]] = {}
    for env_name in envs_of(store, env):
        grouped = by_service(store.query(env=env_name, until=at))
        history = snaps_by_service(store.snapshots(env=env_name, since=at - WEEK - DAY, until=at))
        rows: list[dict[str, Any]] = []
        entered: list[dict[str, Any]] = []
        for _, service in store.services(env_name):
            score = risk_score(grouped.get(service, []), at, policy.risk.weights, policy.risk.bands)
            snaps = history.get(service, [])
            delta_24h, band_24h = change(score.value, snaps, at, DAY)
            delta_7d, _ = change(score.value, snaps, at, WEEK)
            rows.append({
                "service": service, "score": score.value, "band": score.band, "parts": score.points(),
                "why": [f"{p.name} {p.points:g}: {p.detail}" for p in score.parts if p.points],
                "delta_24h": delta_24h, "delta_7d": delta_7d, "band_24h_ago": band_24h,
            })
            if score.band in ELEVATED and (band_24h is None or BAND_RANK[band_24h] < BAND_RANK[score.band]):
                entered.append({"service": service, "band": score.band, "previous_band": band_24h,
                                "score": score.value})
        rows.sort(key=lambda r: (-r["score"], r["service"]))
        entered.sort(key=lambda r: (-r["score"], r["service"]))
        sections[env_name] = {"services": rows, "entered_high_or_critical": entered, "counts": band_counts(rows)}
    return sections


def band_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
    for row in rows:
        counts[row["band"]] += 1
    return counts


def risk_digest(sections: dict[str, dict[str, Any]], *, at: datetime) -> dict[str, Any]:
    return {"schema": RISK_SCHEMA, "date": at.date().isoformat(), "generated_at": iso_z(at),
            "envs": sections}


# -- weekly platform pressure digest ----------------------------------------------------------
def build_pressure_sections(
    store: SignalStore, policy: RiskPolicy, *, at: datetime, env: str | None,
) -> dict[str, dict[str, Any]]:
    """Per env: services by pressure with the DESIGN §6 signals, the score's parts and evidence."""
    weights, bands = policy.pressure.weights, policy.pressure.bands
    sections: dict[str, dict[str, Any]] = {}
    for env_name in envs_of(store, env):
        grouped = by_service(store.query(env=env_name, until=at))
        history = snaps_by_service(store.snapshots(env=env_name, since=at - HISTORY_SPAN, until=at))
        rows: list[dict[str, Any]] = []
        uncapped: dict[str, float] = {}
        for _, service in store.services(env_name):
            signals = grouped.get(service, [])
            live = risk_score(signals, at, policy.risk.weights, policy.risk.bands).value
            figures = pressure_signals(signals, history.get(service, []), at, live)
            score = pressure_score(figures, weights, bands)
            uncapped[service] = score.uncapped
            rows.append({
                "service": service, "pressure_score": score.value, "band": score.band, "signals": figures,
                "parts": score.points(),
                "evidence": evidence(signals, at, policy.pressure.max_evidence),
            })
        # Two services capped at 100 still differ: the one further past the cap ranks first.
        rows.sort(key=lambda r: (-r["pressure_score"], -uncapped[r["service"]], r["service"]))
        sections[env_name] = {"services": rows}
    return sections


def pressure_digest(
    sections: dict[str, dict[str, Any]], *, at: datetime, previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """The week's digest: these env sections replace theirs; other envs' sections are kept."""
    week = iso_week(at.date())
    envs: dict[str, Any] = {}
    if previous is not None and previous.get("week") == week and isinstance(previous.get("envs"), dict):
        envs.update(previous["envs"])
    envs.update(sections)
    return {
        "schema": PLATFORM_SCHEMA, "week": week, "generated_at": iso_z(at),
        "period": {"start": iso_z(at - WEEK), "end": iso_z(at)},
        "envs": dict(sorted(envs.items())),
    }
