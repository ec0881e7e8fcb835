"""A SAMPLE platform priority digest for the current ISO week (``make run``).

Everything here is made up and says so: the digest carries ``"sample": true`` and a note,
every evidence ref starts with ``SAMPLE-`` and links to ``sample.invalid`` (a reserved domain
that never resolves), and items generated from it are titled ``[SAMPLE] …`` and tagged
``sample-data``. The content depends only on the ISO week, so writing it again in the same
week gives the same bytes and re-running generation changes nothing.

The sample is validated against ``generation.digest.PlatformDigest`` before it is written, and
it never replaces a real digest: if this week's file exists and is not a sample, it is left
alone and used as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from services.router.domain.weeks import iso_week, week_start
from services.router.generation.digest import PLATFORM_DIR, PLATFORM_SCHEMA, PlatformDigest, dump_digest
from services.router.signals.digest_files import folder_lock, write_json_and_md
from services.router.signals.reports import render_pressure_md

NOTE = ("SAMPLE DATA written by `make run` (services/router/sample/digest.py) to show weekly generation; "
        "not real signals. Run architecture_pressure_tool.digest for a real digest.")
SAMPLE_URL = "https://sample.invalid"

# (service, pressure, band, signals, evidence) per env. Signals in DESIGN §6 order:
# risk_avg_7d, risk_max_7d, risk_delta_7d, incidents_30d, recurring_incidents_30d,
# slo_breaches_7d, overdue_followups, open_critical_vulns, failed_deploys_7d.
Row = tuple[str, float, str, tuple[float, float, float, int, int, int, int, int, int], list[tuple[str, str, str]]]
SERVICES: dict[str, list[Row]] = {
    "prod": [
        ("gateway", 78.5, "critical", (61.2, 88.0, 12.0, 5, 2, 1, 3, 0, 1), [
            ("incident", "SAMPLE-INC-101", "gateway 5xx spike after config push"),
            ("incident", "SAMPLE-INC-107", "gateway 5xx spike again: same config drift"),
            ("slo_breach", "SAMPLE-SLO-12", "availability SLO burn rate 6x"),
            ("followup", "SAMPLE-FU-33", "add config validation to the gateway deploy"),
        ]),
        ("payments", 72.0, "high", (55.0, 81.0, 4.5, 3, 0, 0, 1, 1, 4), [
            ("vulnerability", "SAMPLE-CVE-2026-0001", "critical: openssl in the payments base image"),
            ("deploy", "SAMPLE-DEP-881", "payments v4.2.0 rolled back"),
            ("deploy", "SAMPLE-DEP-885", "payments v4.2.1 failed health checks"),
        ]),
        ("checkout", 55.3, "high", (47.0, 70.0, -3.0, 2, 0, 2, 0, 0, 0), [
            ("slo_breach", "SAMPLE-SLO-19", "latency-p99 SLO burn rate 14.4x"),
            ("slo_breach", "SAMPLE-SLO-20", "latency-p99 SLO burn rate 2x"),
        ]),
        ("search", 41.0, "medium", (30.5, 52.0, 1.5, 2, 0, 0, 4, 0, 0), [
            ("followup", "SAMPLE-FU-41", "reindex runbook after the October outage"),
            ("followup", "SAMPLE-FU-42", "alert on indexer lag"),
        ]),
        ("auth", 33.5, "medium", (25.0, 40.0, -6.0, 1, 0, 0, 1, 0, 1), []),
        ("catalog", 12.0, "low", (8.0, 15.0, 0.0, 0, 0, 0, 0, 0, 0), []),
    ],
    "staging": [
        ("gateway", 48.0, "medium", (35.0, 60.0, 8.0, 1, 0, 0, 0, 0, 3), [
            ("deploy", "SAMPLE-DEP-901", "staging gateway canary failed"),
        ]),
        ("payments", 26.0, "medium", (18.0, 30.0, 2.0, 0, 0, 0, 0, 1, 0), [
            ("vulnerability", "SAMPLE-CVE-2026-0001", "critical: openssl in the payments base image"),
        ]),
        ("auth", 15.0, "low", (10.0, 18.0, -1.0, 0, 0, 0, 0, 0, 0), []),
    ],
}
SIGNAL_NAMES = ("risk_avg_7d", "risk_max_7d", "risk_delta_7d", "incidents_30d", "recurring_incidents_30d",
                "slo_breaches_7d", "overdue_followups", "open_critical_vulns", "failed_deploys_7d")
EVIDENCE_PATH = {"incident": "incidents", "slo_breach": "slos", "followup": "followups", "vulnerability": "vulns",
                 "deploy": "deploys"}


def sample_platform_digest(now: datetime) -> dict[str, Any]:
    """The sample digest for the ISO week of ``now``, as Monday 06:00 UTC would have written it."""
    week = iso_week(now.date())
    at = datetime.combine(week_start(week), time(6, 0), tzinfo=UTC)
    envs: dict[str, Any] = {}
    for env, rows in SERVICES.items():
        services = []
        for service, pressure, band, figures, evidence in rows:
            services.append({
                "service": service, "pressure_score": pressure, "band": band,
                "signals": dict(zip(SIGNAL_NAMES, figures, strict=True)),
                "evidence": [{"kind": kind, "ref": ref, "title": f"[sample] {title}",
                              "source": f"{SAMPLE_URL}/{EVIDENCE_PATH[kind]}/{ref}"} for kind, ref, title in evidence],
            })
        envs[env] = {"services": services}
    digest = PlatformDigest.model_validate({
        "schema": PLATFORM_SCHEMA, "week": week, "generated_at": at.isoformat(),
        "period": {"start": (at - timedelta(days=7)).isoformat(), "end": at.isoformat()},
        "envs": envs, "sample": True,
    })
    return {**dump_digest(digest), "note": NOTE}


def is_sample(path: Path) -> bool:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return True  # unreadable: nothing worth keeping
    return isinstance(data, dict) and data.get("sample") is True


def write_sample_digest(reports_dir: Path, now: datetime) -> tuple[Path, bool]:
    """Write this week's sample digest (and its ``.md`` twin); ``(path, False)`` when a real one is there."""
    digest = sample_platform_digest(now)
    folder = reports_dir / PLATFORM_DIR
    path = folder / f"{digest['week']}.json"
    with folder_lock(folder):
        if path.exists() and not is_sample(path):
            return path, False
        write_json_and_md(path, digest, "> **SAMPLE DATA** — " + NOTE + "\n\n" + render_pressure_md(digest))
    return path, True
