"""What generation does around a lineage's history: accepted risks, recurrences, owners that moved.

* **Suppression.** While an active item of a lineage (env, service, category) is accepted
  (``domain.acceptance``), generation creates no new week's item for it: the plan entry becomes
  ``suppressed`` with the reason ``suppressed: accepted until YYYY-MM-DD (bl_…: reason)``. This
  week's item, if it exists already, is updated as usual.
* **Recurrence.** When a lineage closed on clear (``generation.clearing``) triggers again within
  its ``reopen_window_days``, with no item of it still open to carry over from, the new week's
  item carries ``meta.recurrence_of`` (the id of the last item closed on clear),
  ``meta.recurrence_closed_on``, the tag ``recurrence`` and a first description line saying so.
  Once made, the item keeps it on later runs (re-runs stay no-ops).
* **Reassignment** (``ownership.reassign_on_change``, default false): an active generated item
  whose owner is not the one the rules now give (``Ownership.owner_for``) moves to the new owner
  with an ``owner_changed`` event giving the reason — unless a person ever set its owner (any
  ``owner_changed`` event not made by a rule): a manual owner is never moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.router.domain import acceptance
from services.router.domain.changes import Record
from services.router.domain.enums import EventType, Source, Status
from services.router.domain.models import MAX_TEXT, ItemInput
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.domain.revisions import Revision
from services.router.generation.candidates import Candidate
from services.router.generation.plan import Plan, PlanEntry
from services.router.generation.wording import clip
from services.router.policy import BacklogPolicy
from services.router.stores.base import BacklogStore

RECURRENCE_TAG = "recurrence"
GENERATOR = "generator"
Problem = tuple[str, str]  # (service, category) within the run's env
Decorate = Callable[[Candidate, Record | None, ItemInput], ItemInput]
# What a closed item is read with when looking for recurrences (Postgres fetches only these).
CLOSED_FIELDS = ("id", "env", "service", "category", "status", "meta")


# -- suppression -------------------------------------------------------------------------------
def accepted_problems(records: Iterable[Record], today: date) -> dict[Problem, Record]:
    """Active items accepted now, by problem (the one accepted last when several are)."""
    out: dict[Problem, Record] = {}
    for r in records:
        if r["status"] in (Status.DONE.value, Status.CANCELED.value) or not acceptance.is_accepted(r, today):
            continue
        key = (r["service"], r["category"])
        if key not in out or (acceptance.until_of(r) or "") > (acceptance.until_of(out[key]) or ""):
            out[key] = r
    return out


def suppress(plan: Plan, accepted: Mapping[Problem, Record]) -> Plan:
    """Creates of accepted problems become ``suppressed`` entries (nothing written for them)."""
    if not accepted:
        return plan
    entries: list[PlanEntry] = []
    for e in plan.entries:
        held = accepted.get((e.candidate.service, e.candidate.category)) if e.action == "create" else None
        if held is None:
            entries.append(e)
            continue
        value = held["accepted"]
        reason = f"suppressed: accepted until {value['until']} ({held['id']}: {value.get('reason', '')})"
        entries.append(PlanEntry(e.candidate, "suppressed", reason, None, held))
    return Plan(entries, plan.cap)


# -- recurrence --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Closure:
    item_id: str
    closed_on: str  # YYYY-MM-DD


def recent_closures(store: BacklogStore, policy: BacklogPolicy, *, env: str, kind: str,
                    today: date) -> dict[Problem, Closure]:
    """Items closed on clear within their category's ``reopen_window_days``: the latest per problem.
    Read only for categories whose ``on_clear`` is ``close`` (nothing else closes on clear)."""
    out: dict[Problem, Closure] = {}
    for name in policy.categories_for(kind):  # type: ignore[arg-type]
        on_clear, _, window = policy.on_clear(name)
        if on_clear != "close":
            continue
        since = (today - timedelta(days=window)).isoformat()
        cursor: str | None = None
        while True:
            page = store.list(ItemQuery(env=env, category=name, status=Status.DONE, limit=MAX_PAGE, cursor=cursor),
                              fields=CLOSED_FIELDS)
            for r in page.items:
                closed = (r.get("meta") or {}).get("closed_on_clear")
                at = closed.get("at") if isinstance(closed, dict) else None
                if not isinstance(at, str) or at < since:
                    continue
                key = (r["service"], name)
                known = out.get(key)
                if known is None or (at, r["id"]) > (known.closed_on, known.item_id):
                    out[key] = Closure(r["id"], at)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return out


def with_recurrence(item: ItemInput, closure: Closure) -> ItemInput:
    line = (f"Recurrence: this problem was closed on clear on {closure.closed_on} ({closure.item_id}) and has "
            "triggered again.\n\n")
    tags = item.tags if RECURRENCE_TAG in item.tags else [*item.tags, RECURRENCE_TAG]
    meta = {**item.meta, "recurrence_of": closure.item_id, "recurrence_closed_on": closure.closed_on}
    description = item.description if item.description.startswith(line) else clip(line + item.description, MAX_TEXT)
    return item.model_copy(update={"tags": tags, "meta": meta, "description": description})


def recurrence_decorator(closures: Mapping[Problem, Closure]) -> Decorate:
    """For ``plan.build_plan``: a new item of a recently closed problem is a recurrence; an existing
    item that is one stays one."""
    def decorate(c: Candidate, existing: Record | None, item: ItemInput) -> ItemInput:
        if existing is not None:
            meta = existing.get("meta") or {}
            of, on = meta.get("recurrence_of"), meta.get("recurrence_closed_on")
            return with_recurrence(item, Closure(of, on)) if isinstance(of, str) and isinstance(on, str) else item
        closure = closures.get((c.service, c.category))
        if closure is None or "carried_from" in item.meta:  # a problem still open carries over instead
            return item
        return with_recurrence(item, closure)

    return decorate


# -- reassignment ------------------------------------------------------------------------------
def reassignments(store: BacklogStore, policy: BacklogPolicy, active: Iterable[Record],
                  owner_for: Callable[[str], tuple[str, str]]) -> list[dict[str, Any]]:
    """Active generated items whose rule owner changed and whose owner no person ever set."""
    out: list[dict[str, Any]] = []
    for r in active:
        if r.get("source") == Source.MANUAL.value:
            continue
        owner, reason = owner_for(r["service"])
        if owner == r["owner"]:
            continue
        events = store.events(r["id"])
        if any(e["type"] == EventType.OWNER_CHANGED.value and not (e.get("meta") or {}).get("by_rule")
               for e in events):
            continue  # a person chose this owner
        out.append({"id": r["id"], "service": r["service"], "category": r["category"], "from": r["owner"],
                    "to": owner, "reason": reason})
    return out


def apply_reassignments(store: BacklogStore, moves: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    done = []
    for move in moves:
        revision = Revision(kind="reassign_owner", owner=move["to"], expected_owner=move["from"],
                            message=f"owner follows the rule: {move['reason']}",
                            meta={"owner_reason": move["reason"], "policy_owner": move["to"]})
        result = store.revise(move["id"], revision, actor=GENERATOR)
        if result.action == "updated":
            done.append(move)
    return done
