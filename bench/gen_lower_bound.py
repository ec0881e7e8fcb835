"""How close can weekly generation get to its floor in CPython at all? (issue 10, evidence)

``python -m bench.gen_lower_bound [--services 5000] [--cap 10000] [--repeat 4]``

The "Weekly generation end to end" row compares the whole action with the JSONL store's
``upsert_many`` of the items it writes, and asks for <= 1.5x: generation's own work may cost at
most half of that upsert. This measures a **lower bound** of that own work: one lean loop, in
the same process and run alternately with the same floor as the row, that does only what any
generation must do for these items — parse the digest (orjson, **no validation**), test the
policy's rules, write a title and a description (shorter than the product's: no policy line,
no evidence ordering or clipping), build the meta, look up carry-over in one dict of the env's
active items, rank the candidates and keep the cap's worth, build the ``ItemInput`` without
validation, make one result row per written item — and no held-back rows, no plan reasons, no
owner policy, no run record, no dry-run support.

If even this loop misses 1.5x, the goal cannot be met by tuning the product's Python; it needs
compiled code (or a different goal). It is a measurement, not a second implementation: nothing
in the product calls it, and its text is deliberately poorer than what users get.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.gen_bench import ENV, LAST_WEEK, TODAY, WEEK, capped_policy, found, probe_requests, write_digest
from services.router.clock import FixedClock
from services.router.domain.enums import ACTIVE_STATUSES, PRIORITY_RANK, Source
from services.router.domain.models import ItemInput
from services.router.generation.facts import weekly_facts
from services.router.generation.run import gc_paused, generate
from services.router.policy import BacklogPolicy
from services.router.stores.base import UpsertRequest
from services.router.stores.jsonl import JsonlBacklogStore


def lean_generation(store: JsonlBacklogStore, digest_path: Path, policy: BacklogPolicy) -> list[dict[str, Any]]:
    """The unavoidable part of a weekly run, then the same ``upsert_many`` the product makes, of as
    many items as the cap lets the product write (the highest ranked, as the product ranks them)."""
    cap = policy.defaults.max_items_per_run
    cats = [(name, c.priority, TODAY + timedelta(days=c.due_days), [(r.signal, r.threshold) for r in c.rules])
            for name, c in policy.categories_for("weekly").items()]
    prefix, digest_name = policy.dedupe.key_prefix, f"platform/{digest_path.name}"
    services = orjson.loads(digest_path.read_bytes())["envs"][ENV]["services"]
    active: dict[tuple[str, str], dict[str, Any]] = {}
    for r in store.index.items.values():  # carry-over: the env's active items, by problem
        if r["env"] == ENV and r["status"] in ACTIVE_STATUSES:
            active[(r["service"], r["category"])] = r
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
            meta["carried_from"], meta["carried_from_week"] = earlier["id"], LAST_WEEK
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--cap", type=int, default=10000, help="the product's cap for the floor's requests")
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    policy = capped_policy(args.cap)
    clock = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    work = Path(tempfile.mkdtemp(prefix="bench-lean-"))
    try:
        this_week = write_digest(work, WEEK, args.services, seed=48)
        last_week = write_digest(work, LAST_WEEK, args.services, seed=47)
        base = work / "base"
        seed_store = JsonlBacklogStore(base, clock=clock)
        generate(seed_store, policy, weekly_facts(found(last_week), ENV), today=TODAY, actor="bench", dry_run=False)
        seed_store.close()
        probe = JsonlBacklogStore(base, clock=clock)  # the row's floor: the product plan's requests
        requests = probe_requests(probe, policy, this_week)
        probe.close()
        samples: dict[str, list[float]] = {"lean": [], "floor": []}
        written = 0
        for n in range(args.repeat):
            for side in ("lean", "floor") if n % 2 == 0 else ("floor", "lean"):
                target = work / f"run-{n}-{side}"
                shutil.copytree(base, target)
                store = JsonlBacklogStore(target, clock=clock)
                store.get("bl_0")  # opened and indexed, untimed
                gc.collect()
                with gc_paused():  # the treatment both sides get in the row
                    started = time.perf_counter()
                    if side == "lean":
                        written = len(lean_generation(store, this_week, policy))
                    else:
                        store.upsert_many(requests, actor="bench")
                    samples[side].append(time.perf_counter() - started)
                store.close()
        lean, floor = statistics.median(samples["lean"]), statistics.median(samples["floor"])
        print(f"lean loop ({written} items written): {lean:.3f} s; floor (upsert_many of the product's "
              f"{len(requests)} requests): {floor:.3f} s; ratio {lean / floor:.2f}x (goal of the row: <= 1.5x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
