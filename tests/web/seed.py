"""A small, realistic backlog with known numbers, for the web and metrics tests.

Today is ``tests.conftest.NOW`` (2026-11-26). In prod: 12 items — 7 overdue (one P0, so both
runbook alerts fire), one carried over for 4 weeks, one for 2 — plus a staging env, and a
last-generation record for prod with 2 held-back candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from services.router.domain.enums import Status
from services.router.generation.records import record_last_generation
from services.router.runtime import Runtime
from tests.conftest import NOW
from tests.factories import item

TODAY = NOW.date()
OWNER_REASON = "ownership.overrides[{service}] in config/backlog_policy.yml"


def due(days_from_today: int) -> date:
    return TODAY + timedelta(days=days_from_today)


# (key, service, category, priority, due offset in days, status, title, weeks_open)
PROD: tuple[tuple[str, str, str, str, int | None, Status, str, int | None], ...] = (
    ("gw-arch", "gateway", "arch_review", "P1", -12, Status.OPEN,
     "Architecture review: gateway (pressure 78.5, 2 recurring incidents)", 4),
    ("pay-sec", "payments", "security", "P0", -3, Status.IN_PROGRESS,
     "Patch critical CVE-2026-1234 in payments base image", None),
    ("auth-slo", "auth", "slo_hardening", "P1", -9, Status.BLOCKED,
     "SLO hardening: auth login latency (1 breach in 7 days)", 2),
    ("search-fu", "search", "followup_debt", "P2", -7, Status.OPEN,
     "Close 4 overdue incident follow-ups for search", None),
    ("gw-deploy", "gateway", "deploy_safety", "P2", -5, Status.OPEN,
     "Deploy safety: gateway rollbacks (3 failed deploys in 7 days)", None),
    ("ledger-arch", "ledger", "arch_review", "P1", -2, Status.OPEN,
     "Architecture review: ledger write path", None),
    ("notif-fu", "notifications", "followup_debt", "P3", -1, Status.IN_PROGRESS,
     "Follow-up: notification retries without backoff", None),
    ("gw-slo", "gateway", "slo_hardening", "P1", 0, Status.OPEN,
     "SLO hardening: gateway 5xx budget (due today, not overdue)", None),
    ("cdn-deploy", "cdn", "deploy_safety", "P2", 10, Status.OPEN,
     "Deploy safety: CDN config canaries", None),
    ("auth-risk", "auth", "risk_reduction", "P1", 4, Status.OPEN,
     "Risk reduction: auth risk band critical for 3 days", None),
    ("old-done", "search", "arch_review", "P2", -20, Status.DONE,
     "Architecture review: search indexer (done)", None),
    ("old-cancel", "cdn", "followup_debt", "P3", -30, Status.CANCELED,
     "Follow-up: CDN purge tooling (canceled)", None),
)
STAGING: tuple[tuple[str, str, str, str, int | None, Status, str, int | None], ...] = (
    ("stg-gw", "gateway", "arch_review", "P2", -4, Status.OPEN, "Staging gateway review", None),
    ("stg-auth", "auth", "security", "P1", 6, Status.OPEN, "Staging auth secrets rotation", None),
)


@dataclass
class Seeded:
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        """The gateway architecture review: oldest overdue in prod, with comments and a status history."""
        return self.ids["gw-arch"]


def seed(rt: Runtime, state_dir: Path | None = None) -> Seeded:
    seeded = Seeded()
    for env, rows in (("prod", PROD), ("staging", STAGING)):
        for key, service, category, priority, offset, status, title, weeks in rows:
            meta: dict[str, Any] = {"owner_reason": OWNER_REASON.format(service=service)}
            if weeks is not None:
                meta["weeks_open"] = weeks
            fields: dict[str, Any] = {"priority": priority, "meta": meta, "owner": f"team-{service}",
                                      "source": "weekly_pressure_digest", "tags": [category.replace("_", "-")],
                                      "description": f"Raised by the weekly platform digest for {service}."}
            if offset is not None:
                fields["due_date"] = due(offset)
            if key == "gw-arch":
                fields["evidence_refs"] = ["https://incidents.example.com/INC-123", "INC-131",
                                           "javascript:alert(document.cookie)"]
            record = rt.store.upsert(item(f"{env}:{key}", env=env, service=service, category=category, title=title,
                                          **fields), actor="scheduler").item
            seeded.ids[key if env == "prod" else f"{env}:{key}"] = record["id"]
            if status != Status.OPEN:
                if status in (Status.DONE, Status.CANCELED):
                    rt.store.set_status(record["id"], Status.IN_PROGRESS, actor="oncall", message="picked up")
                rt.store.set_status(record["id"], status, actor="oncall", message=f"moved to {status.value}")
    rt.store.add_comment(seeded.arch, "Two incidents share the db-pool root cause; pairing with the DB team.",
                         actor="oncall")
    if state_dir is not None:
        record_last_generation(state_dir, {
            "env": "prod", "week": "2026-W48", "digest": "ops/reports/platform/2026-W48.json", "stale_digest": False,
            "created": 3, "updated": 2, "unchanged": 5, "held_back": 2,
            "items": [
                {"service": "billing", "category": "deploy_safety", "priority": "P2", "action": "held_back", "rank": 51,
                 "reason": "failed_deploys_7d 3 ≥ 3 (pressure 41.0); over max_items_per_run 50"},
                {"service": "docs", "category": "followup_debt", "priority": "P3", "action": "held_back", "rank": 52,
                 "reason": "overdue_followups 3 ≥ 3 (pressure 12.5); over max_items_per_run 50"},
            ],
        }, action="auto_generate_weekly", ran_at=NOW.replace(hour=6, minute=20) - timedelta(days=3))
    return seeded


def expected_overdue_ids(seeded: Seeded) -> list[str]:
    """Prod's overdue items in the API's order: oldest due date first (then priority, then id)."""
    keys = sorted((k for k, _s, _c, p, off, st, _t, _w in PROD
                   if off is not None and off < 0 and st in (Status.OPEN, Status.IN_PROGRESS, Status.BLOCKED)),
                  key=lambda k: next(row[4] for row in PROD if row[0] == k))
    return [seeded.ids[k] for k in keys]
