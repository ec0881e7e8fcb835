"""The floor of the "Weekly generation end to end" rows: a lean loop writing the same items (issue 22).

It does only what any generation must do for these items — parse the digest (orjson, **no
validation**), test the policy's rules, write a title and a description (shorter than the
product's: no policy line, no evidence ordering or clipping), build the meta, look up carry-over
in one dict of the env's active items (read through the store's ``list``, as any backend serves
them), rank the candidates and keep the cap's worth, build the ``ItemInput`` without validation,
make one result row per written item, then the same ``upsert_many`` — and no existing-key read,
no held-back rows, no plan reasons, no owner policy, no acceptance sweep, no run record, no dry-run
support. ``tests/bench/test_gen_lower_bound.py`` keeps proving it writes the items the product's
plan writes, so it is a genuine lower bound of the action on the same backlog.

It is a measurement, not a second implementation: nothing in the product calls it, and its text
is deliberately poorer than what users get.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.gen_setup import ENV, LAST_WEEK, TODAY, WEEK
from services.router.domain.enums import PRIORITY_RANK, Source
from services.router.domain.models import ItemInput
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.policy import BacklogPolicy
from services.router.stores.base import BacklogStore, UpsertRequest

LEAN_FIELDS = ("id", "service", "category")  # all carry-over needs of an active item here


def lean_generation(store: BacklogStore, digest_path: Path, policy: BacklogPolicy) -> list[dict[str, Any]]:
    """The unavoidable part of a weekly run, then the same ``upsert_many`` the product makes, of as
    many items as the cap lets the product write (the highest ranked, as the product ranks them)."""
    cap = policy.defaults.max_items_per_run
    cats = [(name, c.priority, TODAY + timedelta(days=c.due_days), [(r.signal, r.threshold) for r in c.rules])
            for name, c in policy.categories_for("weekly").items()]
    prefix, digest_name = policy.dedupe.key_prefix, f"platform/{digest_path.name}"
    services = orjson.loads(digest_path.read_bytes())["envs"][ENV]["services"]
    active: dict[tuple[str, str], str] = {}  # carry-over: the env's active items' ids, by problem
    cursor: str | None = None
    while True:  # through the store's API, as any generation must read them (JSONL or Postgres)
        page = store.list(ItemQuery(env=ENV, active=True, limit=MAX_PAGE, cursor=cursor), fields=LEAN_FIELDS)
        for r in page.items:
            active[(r["service"], r["category"])] = r["id"]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    candidates: list[tuple[int, float, str, str, dict[str, Any], Any, Any, list[tuple[str, Any, Any]]]] = []
    for s in services:  # every service's rules: ranking needs all candidates
        signals = s["signals"]
        signals["pressure_score"] = s["pressure_score"]
        for category, priority, due, rules in cats:
            hit = [(k, signals[k], t) for k, t in rules if signals.get(k) is not None and signals[k] >= t]
            if hit:
                candidates.append((PRIORITY_RANK[priority], -s["pressure_score"], s["service"], category, s, priority,
                              due, hit))
    candidates.sort(key=lambda c: (c[0], c[1], c[2], c[3]))
    requests: list[UpsertRequest] = []
    rows: list[dict[str, Any]] = []
    contexts: dict[str, tuple[str, list[str]]] = {}
    for _, _, name, category, s, priority, due, hit in candidates[:cap]:  # text only for what is written
        score = s["pressure_score"]
        known = contexts.get(name)
        if known is None:
            shown = ", ".join(f"{k} {v:g}" for k, v in s["signals"].items())
            lines = "\n".join(f"- {e['kind']} {e['ref']} — {e['title']}" for e in s["evidence"])
            known = contexts[name] = (f"Pressure {score:g} (band {s['band']}). Signals: {shown}.\n\n"
                                      f"Evidence:\n{lines}", [e["ref"] for e in s["evidence"]])
        context, refs = known
        why = "; ".join(f"{k} {v:g} ≥ {t:g}" for k, v, t in hit)
        key = f"{prefix}:{WEEK}:{ENV}:{name}:{category}"
        earlier = active.get((name, category))
        meta: dict[str, Any] = {
            "digest": digest_name, "digest_week": WEEK, "pressure_score": score, "band": s["band"],
            "signals": {k: v for k, v, _ in hit}, "rules": [k for k, _, _ in hit], "owner_reason": "default",
            "policy_owner": "oncall", "weeks_open": 2 if earlier else 1,
        }
        if earlier:
            meta["carried_from"], meta["carried_from_week"] = earlier, LAST_WEEK
        item = ItemInput.prevalidated({
            "env": ENV, "service": name, "category": category, "title": f"{category}: {name} ({ENV}) — {why}",
            "description": f"Raised by the weekly platform digest for {name} in {ENV}, because:\n- {why}\n\n"
                           f"{context}",
            "priority": priority, "due_date": due, "source": Source.WEEKLY_PRESSURE_DIGEST,
            "dedupe_key": key, "evidence_refs": list(refs), "tags": ["weekly-digest"], "meta": meta,
        })
        requests.append(UpsertRequest(item, "oncall"))
        rows.append({"dedupe_key": key, "service": name, "category": category, "priority": priority.value,
                     "action": "create", "reason": f"{why} — new"})
    for row, result in zip(rows, store.upsert_many(requests, actor="bench"), strict=True):
        row["id"] = result.item["id"]
    return rows
