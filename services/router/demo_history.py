"""DEMO DATA: a few past Mondays replayed, so the first dashboard looks like a real team's.

A backlog generated a minute ago has nothing overdue, no carry-over streak and nobody working on
anything: that shows the plumbing, not the product. On the first ``make run`` (an empty backlog)
this module replays the previous ``weeks`` Mondays with the clock set back, through the same
tools production uses — platform digest ``as_of`` that Monday (the scoring only counts signals
that had happened by then), weekly generation at 06:20, and then what people did during the
week (owners assigned by explicit upsert, work started, items finished, one blocked, comments).
Items left open carry over (``meta.weeks_open``) and pass their due dates, so the dashboard has
overdue work, streaks and an audit trail to show. Choices come from a seeded RNG: reproducible.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from services.router.clock import FixedClock, iso_z
from services.router.domain.queries import ItemQuery
from services.router.runtime import Runtime
from services.router.signals.store import hour_slot

DEMO_SEED = 20261123
HISTORY_STEP_HOURS = 4
ACTIVITY = {  # per created item: (probability, status, comment) tried in order; the rest stay open
    3: [(0.35, "done", "fixed and verified in prod"), (0.25, "in_progress", "picked up in sprint planning")],
    2: [(0.15, "done", "done, see the linked change"), (0.35, "in_progress", "investigating")],
    1: [(0.30, "in_progress", "started"), (0.05, "blocked", "waiting on the vendor patch")],
}


def monday_slot(moment: datetime, weeks_back: int) -> datetime:
    """06:00 UTC on the Monday ``weeks_back`` weeks before ``moment``'s ISO week (digest time)."""
    monday = (moment - timedelta(days=moment.weekday(), weeks=weeks_back)).replace(
        hour=6, minute=0, second=0, microsecond=0)
    return monday


def backlog_is_empty(runtime: Runtime, envs: tuple[str, ...]) -> bool:
    return all(not runtime.store.list(ItemQuery(env=env, limit=1)).items for env in envs)


def replay_past_weeks(
    runtime: Runtime, clock: FixedClock, *, envs: tuple[str, ...], weeks: int = 3, actor: str = "demo",
    seed: int = DEMO_SEED,
) -> list[dict[str, Any]]:
    """Replay ``weeks`` past Mondays (oldest first); the clock is back at its start afterwards.

    Expects the demo signals to be ingested already. Returns one summary per replayed week.
    """
    start = clock.now()
    rng = random.Random(seed)

    def run(who: str, tool: str, action: str, **params: Any) -> Any:
        return runtime.execute(who, tool, action, params)

    summaries: list[dict[str, Any]] = []
    slot = hour_slot(monday_slot(start, weeks) - timedelta(days=7))
    try:
        for back in range(weeks, 0, -1):
            digest_at = monday_slot(start, back)
            clock.set(start)  # the tools refuse an as_of in their future
            while slot <= digest_at:  # risk history feeding the digest's 7-day figures
                run(actor, "risk_history_tool", "snapshot", as_of=iso_z(slot))
                slot += timedelta(hours=HISTORY_STEP_HOURS)
            digest = run(actor, "architecture_pressure_tool", "digest", as_of=iso_z(digest_at))
            clock.set(digest_at + timedelta(minutes=20))
            created: list[dict[str, Any]] = []
            for env in envs:
                result = run(actor, "backlog_tool", "auto_generate_weekly", env=env)
                created += [i for i in result["items"] if i["action"] == "create"]
            clock.set(digest_at + timedelta(days=1, hours=3))
            for item in created:
                play_the_week(run, rng, item, ACTIVITY.get(back, []))
            summaries.append({"week": digest["week"], "created": len(created)})
    finally:
        clock.set(start)
    return summaries


def play_the_week(run: Any, rng: random.Random, item: dict[str, Any], activity: list[tuple[float, str, str]]) -> None:
    """What a team does with a new item: take ownership, then maybe work on it."""
    record = run("demo", "backlog_tool", "get", id=item["id"])
    owner = f"team-{item['service']}"
    if rng.random() < 0.7:
        run("demo", "backlog_tool", "upsert", env=record["env"], service=record["service"],
            category=record["category"], title=record["title"], dedupe_key=record["dedupe_key"],
            description=record.get("description", ""), evidence_refs=record.get("evidence_refs", []),
            tags=record.get("tags", []), meta=record.get("meta", {}), owner=owner)
    roll = rng.random()
    for chance, status, comment in activity:
        if roll < chance:
            run(owner, "backlog_tool", "set_status", id=item["id"], status="in_progress", message=comment)
            if status != "in_progress":
                run(owner, "backlog_tool", "set_status", id=item["id"], status=status, message=comment)
            return
        roll -= chance
