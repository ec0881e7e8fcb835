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

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from services.router.domain.changes import Record
from services.router.domain.dedupe import generated_key
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.domain.weeks import parse_week, previous_week
from services.router.generation.candidates import Candidate, build_candidates, select
from services.router.generation.clearing import apply_clearings, find_clearings, lineages
from services.router.generation.digest_history import current_signals, earlier_signals
from services.router.generation.facts import DigestFacts
from services.router.generation.lifecycle import (
    accepted_problems,
    apply_reassignments,
    reassignments,
    recent_closures,
    recurrence_decorator,
    suppress,
)
from services.router.generation.plan import (
    Action,
    History,
    Plan,
    PlanEntry,
    build_plan,
    generated_week,
    index_history,
    summarize,
)
from services.router.policy import BacklogPolicy
from services.router.stores.base import BacklogStore, UpsertRequest
from services.router.stores.gc_pause import gc_paused

# How far back a closed item can end a streak that an older active item would continue.
MAX_GAP_WEEKS = 106
STORE_ACTIONS: dict[str, Action] = {"created": "create", "updated": "update", "unchanged": "unchanged"}
# What carry-over reads of an earlier item (``generated_week``, ``plan.streak_from``): on Postgres
# the env's active items are fetched with these columns only, not their texts, and of ``meta``
# only ``weeks_open`` (the whole metas were half of this read).
EARLIER_ITEM_FIELDS = ("id", "env", "service", "category", "status", "dedupe_key", "meta.weeks_open")
# What resolve on clear and reassignment read of the env's active items.
ACTIVE_ITEM_FIELDS = ("id", "env", "service", "category", "status", "owner", "source", "dedupe_key", "meta")
OwnerFor = Callable[[str], tuple[str, str]]


def is_stale(facts: DigestFacts, today: date) -> bool:
    """Older than the current ISO week (weekly) or than today (daily): used, but flagged."""
    if facts.kind == "daily":
        return facts.day is not None and facts.day < today
    year, week, _ = today.isocalendar()
    return parse_week(facts.week) < (year, week)


def earlier_history(
    store: BacklogStore, kept: Sequence[Candidate], *, env: str, prefix: str,
) -> tuple[list[Record], History]:
    """What carry-over needs: active earlier-week items of these problems, and the items of the
    weeks between the latest of them and this week (those, if any, are closed) — with their
    ``index_history``, indexed while the items are read."""
    if not kept:
        return [], {}
    week = kept[0].week
    here = parse_week(week)
    wanted = {(c.service, c.category) for c in kept}
    orders: dict[str, tuple[int, int] | None] = {}
    active: list[Record] = []
    history: History = {}  # by problem, in the order the problems are first met (the gap keys' order)
    cursor: str | None = None
    while True:
        page = store.list(ItemQuery(env=env, active=True, limit=MAX_PAGE, cursor=cursor), fields=EARLIER_ITEM_FIELDS)
        for r in page.items:
            service, category = r["service"], r["category"]
            if (service, category) not in wanted:
                continue
            week_of = generated_week(r, prefix, orders)  # listed by env: the problem is (env, …)
            if week_of is None or week_of[0] >= here:
                continue
            active.append(r)
            known = history.get((env, service, category))
            if known is None:
                history[(env, service, category)] = [week_of]
            else:
                known.append(week_of)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    before: list[tuple[str, tuple[int, int]]] = []  # this week's predecessors and their order, newest first
    gap_keys: list[str] = []
    for (_, service, category), dated in history.items():
        newest = dated[0][0] if len(dated) == 1 else max(d[0] for d in dated)
        for n in range(MAX_GAP_WEEKS):
            if n == len(before):
                label = previous_week(before[-1][0] if before else week)
                before.append((label, parse_week(label)))
            wk, order = before[n]
            if order <= newest:
                break
            gap_keys.append(generated_key(prefix, wk, env, service, category))
    if not gap_keys:
        return active, history
    between = list(store.get_many_by_dedupe_key(gap_keys).values())
    for problem, dated in index_history(between, prefix).items():
        history.setdefault(problem, []).extend(dated)
    return active + between, history


def make_plan(store: BacklogStore, policy: BacklogPolicy, facts: DigestFacts, *, today: date,
              owner_for: OwnerFor | None = None) -> Plan:
    """Candidates from the digest, compared with what the backlog holds (reads only): recurrences
    marked and the creates of accepted problems suppressed (``lifecycle``)."""
    prefix = policy.dedupe.key_prefix
    selection = select(build_candidates(facts, policy, today, owner_for), policy.defaults.max_items_per_run)
    keys = [c.dedupe_key for c in selection.all]
    existing = store.get_many_by_dedupe_key(keys) if keys else {}
    earlier, history = earlier_history(store, selection.kept, env=facts.env, prefix=prefix)
    closures = recent_closures(store, policy, env=facts.env, kind=facts.kind, today=today)
    plan = build_plan(selection, existing, earlier, prefix=prefix, history=history,
                      decorate=recurrence_decorator(closures) if closures else None)
    return suppress(plan, accepted_problems(store.accepted_items(facts.env), today))


def plan_requests(plan: Plan) -> list[UpsertRequest]:
    """What applying ``plan`` asks the store to write: every entry not held back, in rank order
    (the candidate's owner only as the fallback: an existing item keeps its owner)."""
    return [UpsertRequest(e.item, e.candidate.owner) for e in plan.entries if e.item is not None]


def apply_plan(store: BacklogStore, plan: Plan, *, actor: str) -> list[tuple[PlanEntry, Record | None]]:
    """One ``upsert_many`` for everything not held back; entries carry the store's actions."""
    requests = plan_requests(plan)
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
    owner_for: OwnerFor | None = None, reports_dir: Path | None = None,
) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) apply; the result the tool returns. ``owner_for``: owners with
    the service catalog (default: the policy's ``ownership`` alone); ``reports_dir``: where the
    earlier digests are, for resolve on clear (None: the current digest is the only evidence)."""
    with gc_paused():  # the run's candidates, plan and items are gone before collection resumes
        return _generate(store, policy, facts, today=today, actor=actor, dry_run=dry_run, owner_for=owner_for,
                         reports_dir=reports_dir)


def _generate(
    store: BacklogStore, policy: BacklogPolicy, facts: DigestFacts, *, today: date, actor: str, dry_run: bool,
    owner_for: OwnerFor | None, reports_dir: Path | None,
) -> dict[str, Any]:
    plan = make_plan(store, policy, facts, today=today, owner_for=owner_for)
    rows: list[tuple[PlanEntry, Record | None]] = (
        [(e, None) for e in plan.entries] if dry_run else apply_plan(store, plan, actor=actor)
    )
    counts, items = summarize(rows)
    result: dict[str, Any] = {
        "env": facts.env, "week": facts.week, "digest": facts.file, "stale_digest": is_stale(facts, today),
        "dry_run": dry_run, **counts, "items": items,
    }
    if facts.day is not None:
        result["date"] = facts.day.isoformat()
    result.update(after_plan(store, policy, facts, today=today, dry_run=dry_run,
                             owner_for=owner_for or policy.ownership.owner_for, reports_dir=reports_dir))
    return result


def after_plan(store: BacklogStore, policy: BacklogPolicy, facts: DigestFacts, *, today: date, dry_run: bool,
               owner_for: OwnerFor, reports_dir: Path | None) -> dict[str, Any]:
    """Resolve on clear and reassignment (``clearing``, ``lifecycle``) over the env's active items:
    ``cleared`` (lineages, with what was done), ``closed_on_clear`` and ``reassigned``. With the
    defaults (``on_clear: none``, ``reassign_on_change: false``) nothing is read or written."""
    out: dict[str, Any] = {"cleared": [], "closed_on_clear": 0, "reassigned": []}
    clearing = any(policy.on_clear(name)[0] != "none" for name in policy.categories_for(facts.kind))
    if not clearing and not policy.ownership.reassign_on_change:
        return out
    active = active_items(store, facts.env)
    if clearing:
        digests = itertools.chain([current_signals(facts)],
                                  earlier_signals(reports_dir, facts) if reports_dir is not None else ())
        cleared = find_clearings(policy, lineages(policy, facts, active), digests)
        if dry_run:
            out["cleared"] = [c.summary() for c in cleared]
        else:
            out["closed_on_clear"], out["cleared"] = apply_clearings(store, cleared, today=today)
            gone = {i for c in out["cleared"] for i in c.get("closed", ())}
            active = [r for r in active if r["id"] not in gone]
    if policy.ownership.reassign_on_change:
        moves = reassignments(store, policy, active, owner_for)
        out["reassigned"] = moves if dry_run else apply_reassignments(store, moves)
    return out


def active_items(store: BacklogStore, env: str) -> list[Record]:
    found: list[Record] = []
    cursor: str | None = None
    while True:
        page = store.list(ItemQuery(env=env, active=True, limit=MAX_PAGE, cursor=cursor), fields=ACTIVE_ITEM_FIELDS)
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def skipped(env: str, *, dry_run: bool, reason: str) -> dict[str, Any]:
    """A run the policy turned off: the full result shape with zeros, and why (never empty output)."""
    return {
        "env": env, "week": None, "digest": None, "stale_digest": False, "dry_run": dry_run,
        "created": 0, "updated": 0, "unchanged": 0, "held_back": 0, "suppressed": 0, "items": [],
        "skipped": True, "reason": reason, "ignored_files": [], "cleared": [], "closed_on_clear": 0,
        "reassigned": [],
    }
