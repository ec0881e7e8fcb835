"""Run a generation: read what the plan needs from the store, plan, then apply in one batch.

Reads go through the store interface only (``get_many_by_dedupe_key`` and ``list``), and the
plan is applied with a single ``upsert_many`` call, so every backend gets the same plan and
applies it the way it applies any upsert (Postgres in one transaction, JSONL under its file
lock). A dry run stops after planning: same plan, nothing written.

The store re-plans each upsert under its own lock, so the actions reported after a real run are
the store's (a concurrent writer between planning and applying shows up as a different action,
never as a lost or doubled item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from services.router.domain.changes import Record
from services.router.domain.dedupe import generated_key, key_week
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.domain.weeks import parse_week, previous_week
from services.router.generation.candidates import Candidate, DigestFacts, build_candidates, select
from services.router.generation.plan import Action, Plan, PlanEntry, build_plan
from services.router.policy import BacklogPolicy
from services.router.stores.base import BacklogStore, UpsertRequest

# How far back a closed item can end a streak that an older active item would continue.
MAX_GAP_WEEKS = 106
STORE_ACTIONS: dict[str, Action] = {"created": "create", "updated": "update", "unchanged": "unchanged"}


def is_stale(facts: DigestFacts, today: date) -> bool:
    """Older than the current ISO week (weekly) or than today (daily): used, but flagged."""
    if facts.kind == "daily":
        return facts.day is not None and facts.day < today
    year, week, _ = today.isocalendar()
    return parse_week(facts.week) < (year, week)


def earlier_items(store: BacklogStore, kept: Sequence[Candidate], *, env: str, prefix: str) -> list[Record]:
    """What carry-over needs: active earlier-week items of these problems, and the items of the
    weeks between the latest of them and this week (those, if any, are closed)."""
    if not kept:
        return []
    week = kept[0].week
    here = parse_week(week)
    problems = {(c.service, c.category) for c in kept}
    active: list[Record] = []
    cursor: str | None = None
    while True:
        page = store.list(ItemQuery(env=env, active=True, limit=MAX_PAGE, cursor=cursor))
        for r in page.items:
            if (r["service"], r["category"]) not in problems:
                continue
            wk = key_week(r["dedupe_key"])
            if wk is not None and parse_week(wk) < here and r["dedupe_key"] == generated_key(
                prefix, wk, env, r["service"], r["category"]
            ):
                active.append(r)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for r in active:
        order = parse_week(str(key_week(r["dedupe_key"])))
        pair = (r["service"], r["category"])
        latest[pair] = max(latest.get(pair, order), order)
    gap_keys: list[str] = []
    for (service, category), newest in latest.items():
        wk = previous_week(week)
        for _ in range(MAX_GAP_WEEKS):
            if parse_week(wk) <= newest:
                break
            gap_keys.append(generated_key(prefix, wk, env, service, category))
            wk = previous_week(wk)
    between = store.get_many_by_dedupe_key(gap_keys) if gap_keys else {}
    return active + list(between.values())


def make_plan(store: BacklogStore, policy: BacklogPolicy, facts: DigestFacts, *, today: date) -> Plan:
    """Candidates from the digest, compared with what the backlog holds (reads only)."""
    prefix = policy.dedupe.key_prefix
    selection = select(build_candidates(facts, policy, today), policy.defaults.max_items_per_run)
    keys = [c.dedupe_key for c in selection.all]
    existing = store.get_many_by_dedupe_key(keys) if keys else {}
    earlier = earlier_items(store, selection.kept, env=facts.env, prefix=prefix)
    return build_plan(selection, existing, earlier, prefix=prefix)


def apply_plan(store: BacklogStore, plan: Plan, *, actor: str) -> list[tuple[PlanEntry, Record | None]]:
    """One ``upsert_many`` for everything not held back; entries carry the store's actions."""
    requests = [UpsertRequest(e.item, e.candidate.owner) for e in plan.entries if e.item is not None]
    results = iter(store.upsert_many(requests, actor=actor) if requests else [])
    out: list[tuple[PlanEntry, Record | None]] = []
    for entry in plan.entries:
        if entry.item is None:
            out.append((entry, None))
            continue
        result = next(results)
        action = STORE_ACTIONS[result.action]
        if action != entry.action:
            entry = replace(entry, action=action, reason=f"{entry.candidate.why} — {result.action} "
                                                           "(the item changed after the plan was made)")
        out.append((entry, result.item))
    return out


def generate(
    store: BacklogStore, policy: BacklogPolicy, facts: DigestFacts, *, today: date, actor: str, dry_run: bool,
) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) apply; the result the tool returns."""
    plan = make_plan(store, policy, facts, today=today)
    rows: list[tuple[PlanEntry, Record | None]] = (
        [(e, None) for e in plan.entries] if dry_run else apply_plan(store, plan, actor=actor)
    )
    counts = Plan([e for e, _ in rows], plan.cap).counts()
    result: dict[str, Any] = {
        "env": facts.env, "week": facts.week, "digest": facts.file, "stale_digest": is_stale(facts, today),
        "dry_run": dry_run, **counts, "items": [e.summary(record) for e, record in rows],
    }
    if facts.day is not None:
        result["date"] = facts.day.isoformat()
    return result


def skipped(env: str, *, dry_run: bool, reason: str) -> dict[str, Any]:
    """A run the policy turned off: the full result shape with zeros, and why (never empty output)."""
    return {
        "env": env, "week": None, "digest": None, "stale_digest": False, "dry_run": dry_run,
        "created": 0, "updated": 0, "unchanged": 0, "held_back": 0, "items": [],
        "skipped": True, "reason": reason,
    }
