"""Candidates + what the backlog holds → the plan, one entry per candidate with a reason (pure).

Actions follow the upsert rules (DESIGN §4): a new dedupe key is ``create``; an existing key is
``update`` when title, description, evidence, tags or meta differ and ``unchanged`` otherwise
(owner, status, priority and due date of an existing item are never touched); a candidate past
``max_items_per_run`` is ``held_back``. A dry run shows this plan; a real run applies it.

Carry-over (``meta.weeks_open``, ``meta.carried_from``): a problem is the same problem across
weeks when env, service and category match. The streak continues from the most recent
earlier-week item of that problem:

* if that item is still active, the new item has ``carried_from`` = its id,
  ``carried_from_week`` = its week, and ``weeks_open`` = its ``weeks_open`` (1 when absent) +
  the weeks between the two (1 for consecutive weeks, so W46, W47, W48 count 1, 2, 3; an item
  left open through a quiet week keeps counting, because the problem stayed unresolved);
* if it is done or canceled, the streak restarts: ``weeks_open`` = 1, no ``carried_from``;
* with no earlier item, ``weeks_open`` = 1.

Once this week's item exists its carry-over is kept as recorded, so closing last week's item
after this week's was created does not rewrite history (and re-runs stay no-ops).

The caller supplies ``earlier``: every active item of the env from an earlier week, plus any
item keyed for a week between such an item and this one (those are closed, since they are not
active; they end a streak). ``run.earlier_history`` reads exactly that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.router.domain.changes import UPDATABLE_FIELDS, Record
from services.router.domain.enums import ACTIVE_STATUSES, Priority
from services.router.domain.models import ItemInput
from services.router.domain.weeks import parse_week, weeks_between
from services.router.generation.candidates import Candidate, Selection

Action = Literal["create", "update", "unchanged", "held_back", "suppressed"]
CARRY_FIELDS = ("weeks_open", "carried_from", "carried_from_week")
SCORE_WORD = {"pressure_score": "pressure", "risk_score": "risk"}


# Plain slots (hashable as a frozen one): one per created item, four times cheaper to build
# than a frozen dataclass. Nothing changes one once it is made (``NEW_STREAK`` is shared).
@dataclass(slots=True, unsafe_hash=True)
class Carry:
    weeks_open: int
    carried_from: str | None = None
    carried_from_week: str | None = None
    restarted_after: str | None = None

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weeks_open": self.weeks_open}
        if self.carried_from is not None:
            out["carried_from"] = self.carried_from
            out["carried_from_week"] = self.carried_from_week
        return out


NEW_STREAK = Carry(1)
PRIORITY_VALUES = {p: p.value for p in Priority}  # ``p.value`` is a slow enum property


@dataclass(slots=True)  # not frozen: one per candidate, and frozen dataclasses are slow to build
class PlanEntry:
    """What generation does with one candidate, and why."""

    candidate: Candidate
    action: Action
    reason: str
    item: ItemInput | None
    existing: Record | None
    changed: tuple[str, ...] = ()

    def summary(self, record: Record | None = None) -> dict[str, Any]:
        """The result row: the stored item's id/owner/priority when there is one."""
        c = self.candidate
        stored = record or self.existing
        if stored:
            return {"id": stored["id"], "dedupe_key": c.dedupe_key, "service": c.service, "category": c.category,
                    "priority": stored["priority"], "owner": stored["owner"], "action": self.action,
                    "reason": self.reason, "rank": c.rank}
        return {"id": None, "dedupe_key": c.dedupe_key, "service": c.service, "category": c.category,
                "priority": PRIORITY_VALUES[c.priority], "owner": c.owner, "action": self.action,
                "reason": self.reason, "rank": c.rank}


@dataclass(frozen=True, slots=True)
class Plan:
    entries: list[PlanEntry]
    cap: int

    @property
    def writes(self) -> list[PlanEntry]:
        """Entries that go to the store (everything not held back), in rank order."""
        return [e for e in self.entries if e.item is not None]


COUNT_NAMES: dict[str, str] = {"create": "created", "update": "updated", "unchanged": "unchanged",
                               "held_back": "held_back", "suppressed": "suppressed"}


def summarize(rows: Iterable[tuple[PlanEntry, Record | None]]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The result's counts by action (``created``, ``updated`` …) and each entry's
    ``summary(record)``, in one pass over the rows."""
    counts = dict.fromkeys(COUNT_NAMES.values(), 0)
    items: list[dict[str, Any]] = []
    append = items.append
    for entry, record in rows:
        counts[COUNT_NAMES[entry.action]] += 1
        append(entry.summary(record))
    return counts, items


Dated = tuple[tuple[int, int], str, Record]  # (week order, week label, record)
History = dict[tuple[str, str, str], list[Dated]]  # (env, service, category) → its earlier items


def index_history(earlier: Iterable[Record], prefix: str) -> History:
    """Earlier generated items by problem (env, service, category), each with its week.

    Built once per plan so carry-over is a lookup per candidate, not a scan of the history
    (a digest of thousands of services would otherwise be quadratic).
    """
    out: History = {}
    orders: dict[str, tuple[int, int] | None] = {}
    for record in earlier:
        dated = generated_week(record, prefix, orders)
        if dated is None:
            continue
        problem = (record["env"], record["service"], record["category"])
        found = out.get(problem)
        if found is None:
            out[problem] = [dated]
        else:
            found.append(dated)
    return out


def generated_week(record: Record, prefix: str, orders: dict[str, tuple[int, int] | None]) -> Dated | None:
    """``(week order, week, record)`` when the record's key is the generated key of its own week
    and problem (``generated_key``); ``orders`` remembers the labels seen."""
    parts = record["dedupe_key"].split(":")
    if len(parts) != 5 or parts[0] != prefix or parts[2] != record["env"] or parts[3] != record["service"] \
            or parts[4] != record["category"]:
        return None
    order = week_or_none(parts[1], orders)
    return None if order is None else (order, parts[1], record)


def week_or_none(label: str, known: dict[str, tuple[int, int] | None]) -> tuple[int, int] | None:
    """``parse_week(label)``, None when it is not a week; ``known`` remembers the labels seen."""
    if label in known:
        return known[label]
    try:
        order: tuple[int, int] | None = parse_week(label)
    except ValueError:
        order = None
    known[label] = order
    return order


def carry_over(candidate: Candidate, history: History) -> Carry:
    """The streak this candidate continues (see the module docstring)."""
    earlier = history.get((candidate.env, candidate.service, candidate.category))
    return streak_from(candidate, earlier) if earlier else NEW_STREAK


def streak_from(candidate: Candidate, earlier: list[Dated]) -> Carry:
    """``carry_over`` given the candidate's problem's earlier items."""
    here = parse_week(candidate.week)
    latest: Dated | None = None
    if len(earlier) == 1:  # the usual case: last week's item alone
        if earlier[0][0] < here:
            latest = earlier[0]
    else:
        for dated in earlier:
            if dated[0] < here and (latest is None or dated[0] > latest[0]):
                latest = dated
    if latest is None:
        return NEW_STREAK
    _, week, record = latest
    if record["status"] not in ACTIVE_STATUSES:
        return Carry(1, restarted_after=record["dedupe_key"])
    before = (record.get("meta") or {}).get("weeks_open")
    base = before if isinstance(before, int) and not isinstance(before, bool) and before >= 1 else 1
    return Carry(base + _weeks_between(week, candidate.week), record["id"], week)


_weeks_between = functools.lru_cache(maxsize=1024)(weeks_between)


def recorded_carry(existing: Record) -> dict[str, Any] | None:
    """The carry-over an existing item already records (kept as it is)."""
    meta = existing.get("meta") or {}
    if not isinstance(meta.get("weeks_open"), int):
        return None
    return {k: meta[k] for k in CARRY_FIELDS if k in meta}


def owner_reason(candidate: Candidate, existing: Record | None) -> str:
    """Why the item has its owner; an existing item keeps its owner even when the policy moved on."""
    if existing is None or existing["owner"] == candidate.owner:
        return candidate.owner_reason
    return (f"kept {existing['owner']} (owner of the existing item); the policy now assigns "
            f"{candidate.owner} via {candidate.owner_reason}")


def changed_fields(existing: Record, item: ItemInput) -> tuple[str, ...]:
    """The fields an upsert would change: the same comparison ``domain.changes.plan_upsert`` makes."""
    incoming = item.model_dump(mode="json", include=set(UPDATABLE_FIELDS))
    return tuple(f for f in UPDATABLE_FIELDS if existing[f] != incoming[f])


def changed_names(existing: Record, item: ItemInput, changed: tuple[str, ...]) -> list[str]:
    """``title, meta.owner_reason``: which meta keys moved, so an update says what it is about."""
    names: list[str] = []
    for name in changed:
        if name != "meta":
            names.append(name)
            continue
        old, new = existing.get("meta") or {}, item.meta
        names += [f"meta.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)] or ["meta"]
    return names


def build_plan(
    selection: Selection, existing: Mapping[str, Record], earlier: Iterable[Record], *, prefix: str,
    history: History | None = None, decorate: Callable[[Candidate, Record | None, ItemInput], ItemInput] | None = None,
) -> Plan:
    """One entry per candidate, in rank order (``history``: ``index_history(earlier, prefix)``,
    when the caller has it already; ``decorate``: a last touch on each item before it is compared,
    ``lifecycle.recurrence_decorator``)."""
    if history is None:
        history = index_history(earlier, prefix)
    entries: list[PlanEntry] = []
    append = entries.append
    get_existing, get_history = existing.get, history.get
    for c in selection.kept:
        record = get_existing(c.dedupe_key)
        text = c.written()
        # the item's meta: ``{**c.meta, "owner_reason": …, **carry}``, built in place
        meta = dict(text.meta)
        if record is None:
            meta["owner_reason"] = c.owner_reason
            before = get_history((c.env, c.service, c.category))  # ``carry_over``, inlined: one per item
            streak = streak_from(c, before) if before else NEW_STREAK
            meta["weeks_open"] = streak.weeks_open
            if streak.carried_from is not None:
                meta["carried_from"] = streak.carried_from
                meta["carried_from_week"] = streak.carried_from_week
            new = c.request_from(text, meta)
            append(PlanEntry(c, "create", create_reason(c, streak), decorate(c, None, new) if decorate else new, None))
            continue
        meta["owner_reason"] = owner_reason(c, record)
        carry = recorded_carry(record)
        if carry is None:
            carry = carry_over(c, history).meta()
        meta.update(carry)
        item = c.request_from(text, meta)
        if decorate is not None:
            item = decorate(c, record, item)
        changed = changed_fields(record, item)
        if changed:
            what = ", ".join(changed_names(record, item, changed))
            append(PlanEntry(c, "update", f"{c.why} — changed {what}", item, record, changed))
        else:
            append(PlanEntry(c, "unchanged", f"{c.why} — already up to date", item, record))
    words: dict[str, str] = {}
    for c in selection.held_back:
        word = words.get(c.score_name)
        if word is None:
            word = words[c.score_name] = SCORE_WORD.get(c.score_name, c.score_name)
        reason = f"{c.why} ({word} {c.score:g}) — over max_items_per_run {selection.cap} (rank {c.rank})"
        append(PlanEntry(c, "held_back", reason, None, get_existing(c.dedupe_key)))
    return Plan(entries, selection.cap)


def create_reason(c: Candidate, streak: Carry | None) -> str:
    if streak is not None and streak.carried_from is not None:
        return f"{c.why} — carried over from {streak.carried_from_week}, open {streak.weeks_open} weeks"
    if streak is not None and streak.restarted_after is not None:
        return f"{c.why} — new (the previous item {streak.restarted_after} was closed)"
    return f"{c.why} — new"
