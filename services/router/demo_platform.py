"""DEMO DATA: a synthetic platform and the whole upstream pipeline run through the tools.

Nothing here is real: every id starts with ``DEMO-`` and every source URL points at
``demo.invalid`` (a reserved TLD that never resolves). The generator is deterministic for a
(seed, moment) pair, so a demo run and its reports are reproducible.

``run_platform_pipeline(runtime)`` is what ``make run`` calls before weekly generation:
signals in (``signals_tool.ingest``), hourly snapshots backfilled for 7 days
(``risk_history_tool.snapshot`` with ``as_of``), the daily risk digest and the weekly platform
digest — the same actions, entitlements and files as production.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.router.clock import iso_z
from services.router.runtime import Runtime
from services.router.signals.store import hour_slot

DEMO_ACTOR = "demo"
DEMO_SEED = 20261123
DEMO_URL = "https://demo.invalid"
ENVS = ("prod", "staging")
WEEKS_OF_HISTORY = 6
BACKFILL_HOURS = 7 * 24


@dataclass(frozen=True, slots=True)
class Profile:
    """How troubled a service is: expected counts over the history, per env."""

    incidents: float
    sev1_share: float
    deploys_per_week: int
    failure_rate: float
    slo_breaches: float
    critical_vulns: int
    causes: tuple[str, ...]


HOT = Profile(6, 0.3, 8, 0.15, 4, 1, ("db-pool-exhaustion", "config-drift", "retry-storm"))
WARM = Profile(3, 0.1, 6, 0.12, 1.5, 0, ("memory-leak", "dependency-timeout", "cert-expiry"))
CALM = Profile(0.8, 0.0, 4, 0.05, 0.3, 0, ("disk-pressure", "noisy-neighbour"))

SERVICES: dict[str, Profile] = {
    "gateway": HOT, "payments": HOT, "checkout": WARM, "auth": WARM, "search": WARM,
    "catalog": CALM, "cart": WARM, "inventory": CALM, "orders": WARM, "notifications": CALM,
    "pricing": CALM, "recommendations": CALM, "shipping": CALM, "billing": WARM, "user-profile": CALM,
    "media": CALM, "analytics-ingest": WARM, "feature-flags": CALM,
}
ENV_FACTOR = {"prod": 1.0, "staging": 0.5}
PACKAGES = ("openssl", "log4j-core", "jackson-databind", "netty", "libxml2", "urllib3", "glibc")


def demo_signals(now: datetime, *, seed: int = DEMO_SEED) -> list[dict[str, Any]]:
    """Several weeks of signals for every demo service in prod and staging, ending at ``now``."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for env in ENVS:
        for service, profile in SERVICES.items():
            gen = _ServiceHistory(rng, env, service, profile, now)
            out += gen.incidents() + gen.deploys() + gen.slo_breaches() + gen.vulnerabilities() + gen.alerts()
    return out


class _ServiceHistory:
    def __init__(self, rng: random.Random, env: str, service: str, profile: Profile, now: datetime) -> None:
        self.rng, self.env, self.service, self.profile, self.now = rng, env, service, profile, now
        self.factor = ENV_FACTOR[env]
        self.start = now - timedelta(weeks=WEEKS_OF_HISTORY)
        self.seq = 0

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"DEMO-{prefix}-{self.env}-{self.service}-{self.seq}"

    def _base(self, kind: str, ident: str, path: str) -> dict[str, Any]:
        return {"kind": kind, "id": ident, "env": self.env, "service": self.service,
                "source": f"{DEMO_URL}/{path}/{ident}"}

    def _moment(self, start: datetime | None = None) -> datetime:
        begin = start or self.start
        return begin + timedelta(seconds=self.rng.uniform(0, (self.now - begin).total_seconds()))

    def _count(self, expected: float) -> int:
        scaled = expected * self.factor
        return int(scaled) + (1 if self.rng.random() < scaled - int(scaled) else 0)

    def incidents(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(self._count(self.profile.incidents)):
            started = self._moment()
            roll = self.rng.random()
            severity = "sev1" if roll < self.profile.sev1_share else "sev2" if roll < 0.5 else "sev3"
            cause = self.rng.choice(self.profile.causes)
            ident = self._id("INC")
            record = {**self._base("incident", ident, "incidents"), "severity": severity,
                      "title": f"[demo] {self.service}: {cause.replace('-', ' ')}", "root_cause": cause,
                      "started_at": iso_z(started), "status": "resolved",
                      "resolved_at": iso_z(started + timedelta(hours=self.rng.uniform(0.5, 20)))}
            if self.now - started < timedelta(hours=30) and self.rng.random() < 0.6:
                record.update(status=self.rng.choice(["open", "mitigated"]), resolved_at=None)
            elif started + timedelta(hours=20) > self.now:
                record.update(status="mitigated", resolved_at=None)
            out.append(record)
            out += self.followups(ident, started)
        return out

    def followups(self, incident: str, started: datetime) -> list[dict[str, Any]]:
        out = []
        for n in range(self.rng.randint(1, 3)):
            due = (started + timedelta(days=self.rng.randint(5, 14))).date()
            done = self.rng.random() < (0.35 if self.profile is HOT else 0.7)
            created = started + timedelta(hours=6)
            record = {**self._base("followup", self._id("FU"), "followups"), "incident_ref": incident,
                      "title": f"[demo] follow-up {n + 1} for {incident}", "due_date": due.isoformat(),
                      "created_at": iso_z(min(created, self.now)), "status": "open"}
            finished = created + timedelta(days=self.rng.uniform(1, 12))
            if done and finished < self.now:
                record.update(status="done", done_at=iso_z(finished))
            out.append(record)
        return out

    def deploys(self) -> list[dict[str, Any]]:
        out = []
        for week in range(WEEKS_OF_HISTORY):
            for _ in range(max(1, int(self.profile.deploys_per_week * self.factor))):
                at = self._moment(self.now - timedelta(weeks=week + 1))
                roll = self.rng.random()
                result = ("failed" if roll < self.profile.failure_rate * 0.6 else
                          "rolled_back" if roll < self.profile.failure_rate else "success")
                version = f"v{self.rng.randint(1, 9)}.{self.rng.randint(0, 40)}.{self.rng.randint(0, 9)}"
                out.append({**self._base("deploy", self._id("DEP"), "deploys"), "result": result,
                            "version": version, "at": iso_z(at)})
        return out

    def slo_breaches(self) -> list[dict[str, Any]]:
        return [
            {**self._base("slo_breach", self._id("SLO"), "slos"),
             "slo": self.rng.choice(["availability", "latency-p99"]),
             "burn_rate": self.rng.choice([1.2, 2.0, 6.0, 14.4]), "at": iso_z(self._moment())}
            for _ in range(self._count(self.profile.slo_breaches))
        ]

    def vulnerabilities(self) -> list[dict[str, Any]]:
        out = []
        severities = ["critical"] * (self.profile.critical_vulns if self.env == "prod" else 0)
        severities += [self.rng.choice(["high", "medium", "low"]) for _ in range(self.rng.randint(0, 3))]
        for severity in severities:
            detected = self._moment()
            record = {**self._base("vulnerability", self._id("VULN"), "vulns"), "severity": severity,
                      "cve": f"CVE-{detected.year}-{self.rng.randint(10000, 99999)}",
                      "package": self.rng.choice(PACKAGES), "status": "open", "detected_at": iso_z(detected),
                      "title": f"[demo] {severity} vulnerability"}
            if severity != "critical" and self.rng.random() < 0.5:
                fixed = detected + timedelta(days=self.rng.uniform(1, 10))
                if fixed < self.now:
                    record.update(status="fixed", fixed_at=iso_z(fixed))
            out.append(record)
        return out

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(self._count(self.profile.incidents * 2)):
            starts = self._moment()
            name = self.rng.choice(["HighErrorRate", "HighLatency", "PodCrashLooping", "QueueBacklog"])
            record = {**self._base("alert", self._id("ALERT"), "alerts"), "alertname": name,
                      "severity": self.rng.choice(["critical", "warning", "warning", "info"]),
                      "title": f"[demo] {name} on {self.service}", "starts_at": iso_z(starts), "status": "resolved",
                      "ends_at": iso_z(starts + timedelta(minutes=self.rng.uniform(5, 240)))}
            if self.now - starts < timedelta(hours=6):
                record.update(status="firing", ends_at=None)
            elif starts + timedelta(minutes=240) > self.now:
                record.update(ends_at=iso_z(self.now - timedelta(minutes=1)))
            out.append(record)
        return out


def ingest_demo_signals(runtime: Runtime, *, seed: int = DEMO_SEED, actor: str = DEMO_ACTOR) -> dict[str, int]:
    """Send the demo signals through ``signals_tool.ingest``; the summed counts.

    History ends at today's midnight (UTC), so every run on the same day sends the same signals
    and a re-run is a no-op for the stores instead of rewriting the history.
    """
    now = runtime.clock.now()
    signals = demo_signals(now.replace(hour=0, minute=0, second=0, microsecond=0), seed=seed)
    counts = {"accepted": 0, "rejected": 0, "created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(signals), 1000):
        result = runtime.execute(actor, "signals_tool", "ingest", {"signals": signals[start:start + 1000]})
        for key in counts:
            counts[key] += result["counts"][key]
    return counts


def run_platform_pipeline(
    runtime: Runtime, *, seed: int = DEMO_SEED, hours: int = BACKFILL_HOURS, actor: str = DEMO_ACTOR,
) -> dict[str, Any]:
    """Signals → hourly snapshots (backfilled) → risk digest → platform digest, via the tools.

    Uses ``runtime.clock`` as "now". Safe to run again: signals are upserted by (kind, id) (the
    same ones all day), snapshots replace their hour, digests replace their env sections.
    """
    now = runtime.clock.now()

    def run(tool: str, action: str, **params: Any) -> Any:
        return runtime.execute(actor, tool, action, params)

    counts = ingest_demo_signals(runtime, seed=seed, actor=actor)
    written = 0
    for back in range(hours - 1, 0, -1):
        written += run("risk_history_tool", "snapshot", as_of=iso_z(hour_slot(now) - timedelta(hours=back)))["written"]
    written += run("risk_history_tool", "snapshot")["written"]
    risk = run("risk_history_tool", "digest")
    platform = run("architecture_pressure_tool", "digest")
    return {
        "demo_data": True, "signals": counts, "snapshots_written": written,
        "risk_digest": risk["path"], "platform_digest": platform["path"], "week": platform["week"],
        "top": {env: rows[:5] for env, rows in platform["envs"].items()},
    }
