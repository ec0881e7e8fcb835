"""Synthetic backlog files in the exact format the JSONL store writes, fast to produce."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from services.router.clock import FixedClock
from services.router.domain.changes import plan_status, plan_upsert
from services.router.domain.enums import Status
from services.router.domain.models import ItemInput

ENVS = ("prod", "staging", "dev")
STATUS_CYCLE = (Status.IN_PROGRESS, Status.BLOCKED, Status.OPEN, Status.DONE)


def write_backlog(directory: Path, *, items: int, versions: int, seed: int = 1, spread_weeks: int = 0) -> None:
    """``items`` items, each written ``versions`` times (a create, then status changes).

    By default every write happens at one instant. With ``spread_weeks``, items are created
    evenly over that many weeks up to 2026-11-02 and each later version comes a day after the
    previous one (never after 2026-11-02), so weekly trends have weeks to count in; every
    other item then gets one version less, so that (with 5 versions) half end open, half done.
    """
    from datetime import UTC, datetime, timedelta

    rng = random.Random(seed)
    end = datetime(2026, 11, 2, tzinfo=UTC)
    clock = FixedClock(end)
    step = timedelta(weeks=spread_weeks) / max(items, 1)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "items.jsonl", "wb") as items_fh, open(directory / "events.jsonl", "wb") as events_fh:
        for n in range(items):
            inp = ItemInput(
                env=ENVS[n % 3] if n % 2 else "prod", service=f"svc{rng.randrange(500)}",
                category=rng.choice(["arch_review", "security", "slo_hardening", "followup_debt"]),
                title=f"Investigate recurring pressure on service {n}", description="Signals: " + "x" * 180,
                priority=rng.choice(["P0", "P1", "P2", "P3"]),
                due_date=f"2026-{rng.randint(10, 12):02d}-{rng.randint(1, 28):02d}",
                dedupe_key=f"platform_backlog:2026-W45:prod:svc{n}:arch_review", evidence_refs=[f"INC-{n}"],
                tags=["weekly"], meta={"pressure_score": rng.randint(0, 100), "digest_week": "2026-W45"},
            )
            created = end - (items - 1 - n) * step if spread_weeks else end
            change = plan_upsert(None, inp, fallback_owner="oncall", now=created, actor="bench")
            record = change.item
            for v in range(versions - n % 2 if spread_weeks else versions):
                if v:
                    at = min(created + timedelta(days=v), end) if spread_weeks else clock.now()
                    change = plan_status(record, STATUS_CYCLE[(v - 1) % 4], now=at, actor="bench")
                    record = change.item
                events_fh.write(orjson.dumps(change.event) + b"\n")
                items_fh.write(orjson.dumps({**record, "_ev": change.event}) + b"\n")
