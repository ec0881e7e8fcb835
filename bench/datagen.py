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


def write_backlog(directory: Path, *, items: int, versions: int, seed: int = 1) -> None:
    """``items`` items, each written ``versions`` times (a create, then status changes)."""
    from datetime import UTC, datetime

    rng = random.Random(seed)
    clock = FixedClock(datetime(2026, 11, 2, tzinfo=UTC))
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
            change = plan_upsert(None, inp, fallback_owner="oncall", now=clock.now(), actor="bench")
            record = change.item
            for v in range(versions):
                if v:
                    change = plan_status(record, STATUS_CYCLE[(v - 1) % 4], now=clock.now(), actor="bench")
                    record = change.item
                events_fh.write(orjson.dumps(change.event) + b"\n")
                items_fh.write(orjson.dumps({**record, "_ev": change.event}) + b"\n")
