"""Resolve on clear: a lineage whose rules stopped holding is closed or commented (``lifecycle.on_clear``).

A *lineage* is (env, service, category). At each generation for an env, a lineage that has
active generated items and whose category's rules held in none of the last
``clear_after_digests`` digests that list the service — the current digest included — is
*cleared*. A digest without the service (or without the env) is no evidence either way: it is
skipped, neither counting towards the clearing nor resetting it. What happens then is the
category's ``on_clear`` (else the top-level one):

* ``none`` (the default, the runbook's behaviour): nothing is even evaluated;
* ``comment``: each active generated item of the lineage gets one comment per clearing — a
  clearing is identified by the newest week any of its items was raised for, so a re-run, or
  the next week of the same clearing, adds nothing, while a lineage that triggered again and
  then cleared again is a new clearing;
* ``close``: each active generated item moves to ``done`` with one ``status_changed`` event by
  ``generator`` naming the rules and the digests, and ``meta.closed_on_clear`` (what
  ``lifecycle.recurrence`` looks for when the problem comes back).

Manual items (``source: manual``) are never touched: only items of the digest's own source
whose dedupe key is the generated key of their problem. A dry run reports the same clearings
(``cleared: [...]``) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.router.domain.changes import Record
from services.router.domain.enums import EventType
from services.router.domain.revisions import Revision
from services.router.generation.digest_history import DigestSignals
from services.router.generation.facts import DigestFacts
from services.router.generation.plan import generated_week
from services.router.generation.wording import rule_text
from services.router.policy import BacklogPolicy, Category
from services.router.stores.base import BacklogStore

GENERATOR = "generator"


@dataclass(slots=True)
class Lineage:
    """One (env, service, category) with active generated items, and what the digests say of it."""

    service: str
    category: str
    on_clear: str
    needed: int
    rules: list[str]
    items: list[Record] = field(default_factory=list)
    clear_in: list[str] = field(default_factory=list)  # digests in which no rule held, newest first
    decided: bool = False

    @property
    def cleared(self) -> bool:
        return len(self.clear_in) >= self.needed

    @property
    def clearing(self) -> str:
        """The newest week (or key) its items were raised for: one clearing per trigger streak."""
        return max(str(r["dedupe_key"]).split(":")[1] for r in self.items)

    def reason(self) -> str:
        rules = " or ".join(self.rules)
        return (f"{rules} held in none of the last {self.needed} digest(s) listing {self.service} "
                f"({', '.join(self.clear_in)})")

    def summary(self) -> dict[str, Any]:
        what = {"close": "close", "comment": "comment on"}[self.on_clear]
        return {"service": self.service, "category": self.category, "on_clear": self.on_clear,
                "items": [r["id"] for r in self.items], "digests": list(self.clear_in),
                "reason": f"{self.reason()}: {what} {len(self.items)} item(s)"}


def _holds(category: Category, signals: Any) -> bool:
    return any(rule.holds(signals.get(rule.signal)) for rule in category.rules)


def lineages(policy: BacklogPolicy, facts: DigestFacts, active: Iterable[Record]) -> list[Lineage]:
    """The env's active generated items, grouped by lineage, for categories whose ``on_clear`` is not none."""
    prefix = policy.dedupe.key_prefix
    categories = policy.categories_for(facts.kind)
    found: dict[tuple[str, str], Lineage] = {}
    orders: dict[str, Any] = {}
    for record in active:
        category = categories.get(record["category"])
        if category is None or record.get("source") != facts.source.value:
            continue
        on_clear, needed, _ = policy.on_clear(record["category"])
        if on_clear == "none" or generated_week(record, prefix, orders) is None:
            continue
        key = (record["service"], record["category"])
        lineage = found.get(key)
        if lineage is None:
            lineage = found[key] = Lineage(record["service"], record["category"], on_clear, needed,
                                           [rule_text(r) for r in category.rules])
        lineage.items.append(record)
    return sorted(found.values(), key=lambda x: (x.service, x.category))


def find_clearings(policy: BacklogPolicy, found: Sequence[Lineage], digests: Iterator[DigestSignals]) -> list[Lineage]:
    """Walk the digests newest first until every lineage is decided; the cleared ones."""
    categories = policy.categories
    open_ = list(found)
    for digest in digests:
        if not open_:
            break
        if digest.services is None:
            continue
        for lineage in open_:
            signals = digest.services.get(lineage.service)
            if signals is None:
                continue  # no evidence either way
            if _holds(categories[lineage.category], signals):
                lineage.decided = True
            else:
                lineage.clear_in.append(digest.name)
                lineage.decided = lineage.cleared
        open_ = [x for x in open_ if not x.decided]
    return [x for x in found if x.cleared]


def apply_clearings(store: BacklogStore, cleared: Sequence[Lineage], *,
                    today: date) -> tuple[int, list[dict[str, Any]]]:
    """Close or comment; the number of items closed and each clearing's summary with what it did."""
    closed = 0
    out: list[dict[str, Any]] = []
    for lineage in cleared:
        summary = lineage.summary()
        done: list[str] = []
        detail = {"clearing": lineage.clearing, "digests": list(lineage.clear_in), "rules": lineage.rules}
        for record in lineage.items:
            if lineage.on_clear == "close":
                revision = Revision(kind="close_on_clear", message=f"closed on clear: {lineage.reason()}",
                                    meta={"closed_on_clear": {"at": today.isoformat(), **detail}})
                if store.revise(record["id"], revision, actor=GENERATOR).action == "updated":
                    done.append(record["id"])
            elif not _commented(store, record["id"], lineage.clearing):
                store.add_note(record["id"], EventType.COMMENTED, f"signal cleared: {lineage.reason()}",
                               {"on_clear": detail}, actor=GENERATOR)
                done.append(record["id"])
        closed += len(done) if lineage.on_clear == "close" else 0
        out.append({**summary, "closed" if lineage.on_clear == "close" else "commented": done})
    return closed, out


def _commented(store: BacklogStore, item_id: str, clearing: str) -> bool:
    return any(e["type"] == EventType.COMMENTED.value and (e.get("meta") or {}).get("on_clear", {}).get("clearing")
               == clearing for e in store.events(item_id))
