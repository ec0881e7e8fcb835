"""Digest + policy + today → the items generation proposes, ranked, with the cap applied (pure).

For each service of the env, each category of the digest's kind whose rules hold (any rule,
DESIGN §5) becomes one candidate. Its title and description are written from what triggered
it — the rule, the numbers, the evidence refs — so the person who receives the item sees *why*
without opening the digest. Candidates are ordered by priority, then by the service's score
(pressure or risk), then by service and category so the order never depends on dict order;
``max_items_per_run`` keeps the first N and the rest are held back with their rank, never
dropped silently.

The digest is read as ``facts``, the words are ``wording``'s, and the parts shared between
candidates are made once by ``drafts`` (the fast path). Nothing here reads a clock or a file:
the caller passes ``today`` and the validated digest, so
the same inputs always give the same candidates (and re-running a generation changes nothing).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.router.domain.dedupe import generated_key
from services.router.domain.enums import PRIORITY_RANK, Priority
from services.router.domain.models import ItemInput, meta_problem
from services.router.generation.drafts import CandidateText, RunCategory, RunParts, ServiceBlocks, write
from services.router.generation.facts import DigestFacts
from services.router.generation.wording import Trigger
from services.router.policy import BacklogPolicy


# Not frozen: a run makes thousands, and a frozen dataclass costs several times more to build.
# Nothing changes one once it is made (``text`` is written once, on first read).
@dataclass(slots=True, eq=False)
class Candidate:
    """An item generation proposes; ``rank`` is its 1-based place in the run's order.

    Its text (title, description, evidence refs, meta) is written when first read: ranking and
    the cap need only priority, score and names, and with the default cap of 50 almost every
    candidate of a large digest is held back, reported by its reason alone.
    """

    rank: int
    env: str
    service: str
    category: str
    priority: Priority
    due_date: date
    owner: str
    owner_reason: str
    score: float
    score_name: str
    dedupe_key: str
    source: str
    week: str
    triggers: tuple[Trigger, ...]
    tags: tuple[str, ...]
    text: CandidateText | None  # None until first read, then written from these two:
    blocks: ServiceBlocks  # the service's parts of the text
    parts: RunCategory  # the category's

    @property
    def why(self) -> str:
        """``pressure_score 78.5 ≥ 70; recurring_incidents_30d 2 ≥ 2`` (the plan's reason)."""
        triggers = self.triggers
        return triggers[0].text if len(triggers) == 1 else "; ".join([t.text for t in triggers])

    def written(self) -> CandidateText:
        text = self.text
        if text is None:
            text = self.text = write(self.blocks, self.parts, self.triggers, self.owner, self.owner_reason,
                                     self.dedupe_key)
        return text

    @property
    def title(self) -> str:
        return self.written().title

    @property
    def description(self) -> str:
        return self.written().description

    @property
    def evidence_refs(self) -> tuple[str, ...]:
        return self.written().evidence_refs

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.written().meta

    @property
    def checked(self) -> bool:
        return self.written().checked

    def item(self, meta: Mapping[str, Any] | None = None) -> ItemInput:
        """The upsert request: no explicit owner, so an existing item keeps its owner."""
        return self.request(dict(meta if meta is not None else self.meta))

    def request(self, meta: dict[str, Any]) -> ItemInput:
        """``item`` for a meta dict the caller has just made and hands over (it is not copied)."""
        return self.request_from(self.written(), meta)

    def request_from(self, text: CandidateText, meta: dict[str, Any]) -> ItemInput:
        """``request`` given ``written()`` (the plan has it at hand already)."""
        if text.checked and meta_problem(meta) is None:
            return ItemInput.prevalidated({  # no owner: an existing item keeps its own
                "env": self.env, "service": self.service, "category": self.category, "title": text.title,
                "description": text.description, "priority": self.priority,
                "due_date": self.due_date, "source": self.source, "dedupe_key": self.dedupe_key,
                "evidence_refs": list(text.evidence_refs), "tags": list(self.tags), "meta": meta,
            })
        return ItemInput(
            env=self.env, service=self.service, category=self.category, title=text.title,
            description=text.description, priority=self.priority, due_date=self.due_date, source=self.source,
            dedupe_key=self.dedupe_key, evidence_refs=list(text.evidence_refs), tags=list(self.tags), meta=meta,
        )



@dataclass(frozen=True, slots=True)
class Selection:
    """Candidates in rank order, split by the cap."""

    kept: list[Candidate]
    held_back: list[Candidate]
    cap: int

    @property
    def all(self) -> list[Candidate]:
        return [*self.kept, *self.held_back]


def build_candidates(facts: DigestFacts, policy: BacklogPolicy, today: date,
                     owner_for: Callable[[str], tuple[str, str]] | None = None) -> list[Candidate]:
    """Every (service, category) whose rules hold, ranked by priority then score.

    Each candidate's text is the plain one (``tests/generation/test_fast_paths.py`` spells it out
    and compares); what is the same for every service (rule texts, title and policy
    lines, due dates) is worked out once per run, and what is the same for a service's
    categories (header, context and evidence blocks) once per service: a digest has thousands.
    The text is written when first read (``Candidate.written``), so held-back candidates never are.
    ``owner_for``: a service's owner and why (default: the policy's ``ownership`` without a catalog).
    """
    categories = [RunCategory(name, category, facts, today)
                  for name, category in policy.categories_for(facts.kind).items()]
    prefix, env, week, score_name = policy.dedupe.key_prefix, facts.env, facts.week, facts.score_name
    source = facts.source
    tags = (f"{facts.kind}-digest", *(("sample-data",) if facts.sample else ()))
    run = RunParts(facts, tags, today, prefix)
    owner_for = owner_for or policy.ownership.owner_for
    key_head: str | None = None
    drafts: list[Candidate] = []
    for s in facts.services:
        signals, service = s.signals, s.service
        blocks: ServiceBlocks | None = None
        owner = owner_reason = ""
        for cat in categories:
            found: tuple[Trigger, ...] = ()  # the rules that hold, in the policy's order
            for rule in cat.rules:
                value = signals.get(rule.signal)
                if value is None:
                    continue
                cls = value.__class__
                if rule.compare is not None and (cls is int or cls is float):
                    if rule.compare(value, rule.threshold):
                        found += rule.trigger(value)
                elif rule.rule.holds(value):
                    found += rule.trigger(value)
            if not found:
                continue
            if blocks is None:
                blocks = ServiceBlocks(s, run)
                owner, owner_reason = owner_for(service)
            if key_head is None:  # the first candidate checks the week, as ``generated_key`` does
                generated_key(prefix, week, env, service, cat.name)
                key_head = f"{prefix}:{week}:{env}:"
            drafts.append(Candidate(
                0, env, service, cat.name, cat.priority, cat.due_date, owner, owner_reason, s.score, score_name,
                f"{key_head}{service}:{cat.name}", source, week, found, tags, None, blocks, cat,
            ))
    ranked = _in_rank_order(drafts)
    for rank, candidate in enumerate(ranked, 1):
        candidate.rank = rank
    return ranked


def _in_rank_order(drafts: list[Candidate]) -> list[Candidate]:
    """``sorted(drafts, key=(priority rank, -score, service, category))``.

    Done as three stable sorts on one plain key each (category-in-service, score, priority),
    which compare much faster than tuples and give the same order while every score is a
    number that equals itself (no NaN) and no name holds a NUL (the separator below).
    """
    ranks = [PRIORITY_RANK[c.priority] for c in drafts]
    scores = [-c.score for c in drafts]
    names = [f"{c.service}\x00{c.category}" for c in drafts]
    plain = all(s.__class__ is float or s.__class__ is int for s in scores) and all(s == s for s in scores) \
        and sum(n.count("\x00") for n in names) == len(names)
    if not plain:
        return sorted(drafts, key=lambda c: (PRIORITY_RANK[c.priority], -c.score, c.service, c.category))
    order = sorted(range(len(drafts)), key=names.__getitem__)
    order.sort(key=scores.__getitem__)
    order.sort(key=ranks.__getitem__)
    return [drafts[i] for i in order]


def select(candidates: Sequence[Candidate], cap: int) -> Selection:
    """Keep the first ``cap`` (``defaults.max_items_per_run``); hold back the rest."""
    ordered = sorted(candidates, key=_rank)
    return Selection(kept=ordered[:cap], held_back=ordered[cap:], cap=cap)


_rank = operator.attrgetter("rank")
