"""Digest + policy + today → the items generation proposes, ranked, with the cap applied (pure).

For each service of the env, each category of the digest's kind whose rules hold (any rule,
DESIGN §5) becomes one candidate. Its title and description are written from what triggered
it — the rule, the numbers, the evidence refs — so the person who receives the item sees *why*
without opening the digest. Candidates are ordered by priority, then by the service's score
(pressure or risk), then by service and category so the order never depends on dict order;
``max_items_per_run`` keeps the first N and the rest are held back with their rank, never
dropped silently.

Nothing here reads a clock or a file: the caller passes ``today`` and the validated digest, so
the same inputs always give the same candidates (and re-running a generation changes nothing).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from services.router.domain.dedupe import generated_key
from services.router.domain.enums import PRIORITY_RANK, Priority, Source
from services.router.domain.models import MAX_TEXT, MAX_TITLE, ItemInput, meta_problem
from services.router.domain.text import signed
from services.router.domain.weeks import iso_week
from services.router.generation.digest import Evidence, Found, PlatformDigest, PlatformSignals, RiskDigest
from services.router.policy import COMPARISONS, BacklogPolicy, Category, Rule

Kind = Literal["weekly", "daily"]

CATEGORY_TITLES = {
    "arch_review": "Architecture review",
    "slo_hardening": "SLO hardening",
    "followup_debt": "Follow-up debt",
    "security": "Security",
    "deploy_safety": "Deploy safety",
    "risk_reduction": "Risk reduction",
}
# Evidence that speaks to a signal; a category triggered by these shows those first.
SIGNAL_EVIDENCE = {
    "incidents_30d": ("incident",), "recurring_incidents_30d": ("incident",),
    "slo_breaches_7d": ("slo_breach",), "overdue_followups": ("followup",),
    "open_critical_vulns": ("vulnerability",), "failed_deploys_7d": ("deploy",),
}
SIGNAL_KINDS = {signal: frozenset(kinds) for signal, kinds in SIGNAL_EVIDENCE.items()}
NO_KINDS: frozenset[str] = frozenset()
SIGNAL_LABELS = {
    "risk_avg_7d": "risk avg 7d", "risk_max_7d": "risk max 7d", "risk_delta_7d": "Δ risk 7d",
    "incidents_30d": "incidents 30d", "recurring_incidents_30d": "recurring incidents 30d",
    "slo_breaches_7d": "SLO breaches 7d", "overdue_followups": "overdue follow-ups",
    "open_critical_vulns": "open critical vulns", "failed_deploys_7d": "failed deploys 7d",
}
SYMBOLS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<", "eq": "=", "in": "in"}
MAX_EVIDENCE_REFS = 20
MAX_EVIDENCE_LINES = 10


# -- what generation reads from a digest -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """One service of one env as the rules see it, whichever digest it came from."""

    service: str
    score: float
    band: str
    signals: Mapping[str, Any]
    evidence: Sequence[Evidence] = ()
    context: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class DigestFacts:
    """One env of one digest: the input of ``build_candidates``."""

    kind: Kind
    env: str
    week: str
    file: str
    services: Sequence[ServiceFacts]
    sample: bool = False
    day: date | None = None

    @property
    def source(self) -> Source:
        return Source.WEEKLY_PRESSURE_DIGEST if self.kind == "weekly" else Source.DAILY_RISK_DIGEST

    @property
    def score_name(self) -> str:
        return "pressure_score" if self.kind == "weekly" else "risk_score"

    @property
    def title(self) -> str:
        if self.kind == "weekly":
            return f"weekly platform digest {self.week} ({self.file})"
        return f"daily risk digest {self.day} ({self.file})"


def weekly_facts(found: Found[PlatformDigest], env: str) -> DigestFacts:
    """The env's section of a platform digest; the caller has checked the env is there."""
    digest = found.digest
    services = []
    for s in digest.envs[env].services:
        figures = dict(s.signals.__dict__)  # the validated fields, as ``model_dump()`` gives them
        try:
            if tuple(figures) != SIGNAL_FORMAT[0]:
                raise ValueError("not the fields of a validated PlatformSignals")
            shown = SIGNAL_FORMAT[1].format(*figures.values())
        except (TypeError, ValueError):  # each field as it comes
            shown = ", ".join([
                f"{SIGNAL_LABELS[k]} {signed(v, missing='unknown') if k == 'risk_delta_7d' else f'{v:g}'}"
                for k, v in figures.items()])
        figures["pressure_score"] = s.pressure_score
        figures["band"] = s.band
        services.append(ServiceFacts(
            service=s.service, score=s.pressure_score, band=s.band, signals=figures, evidence=s.evidence,
            context=(f"Pressure {s.pressure_score:g} (band {s.band}). Signals: {shown}.",),
        ))
    return DigestFacts("weekly", env, digest.week, found.name, services, digest.sample)


def _signal_format() -> tuple[tuple[str, ...], str]:
    """The fields of ``PlatformSignals`` and one format string showing them all, as ``weekly_facts``
    shows each (``risk avg 7d 45.2, …, Δ risk 7d -3.1, …``): one call per service, not nine."""
    fields = tuple(PlatformSignals.model_fields)
    return fields, ", ".join(f"{SIGNAL_LABELS[k]} {{{i}:{'+g' if k == 'risk_delta_7d' else 'g'}}}"
                             for i, k in enumerate(fields))


SIGNAL_FORMAT = _signal_format()


def daily_facts(found: Found[RiskDigest], env: str) -> DigestFacts:
    """The env's section of a risk digest; the week is the ISO week of the digest's date."""
    digest = found.digest
    services = []
    for s in digest.envs[env].services:
        parts = ", ".join(f"{k} {v:g}" for k, v in sorted(s.parts.items(), key=lambda kv: -kv[1]) if v)
        context = [f"Risk {s.score:g} (band {s.band}); change 24h {signed(s.delta_24h, missing='unknown')}, "
                   f"7d {signed(s.delta_7d, missing='unknown')}. Parts: {parts or 'none'}."]
        context += [f"- {line}" for line in s.why[:MAX_EVIDENCE_LINES]]
        services.append(ServiceFacts(
            service=s.service, score=s.score, band=s.band, context=tuple(context),
            signals={"risk_score": s.score, "risk_band": s.band, "delta_24h": s.delta_24h, "delta_7d": s.delta_7d},
        ))
    return DigestFacts("daily", env, iso_week(digest.date), found.name, services, digest.sample, digest.date)


# -- candidates -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that held, with the value that made it hold; ``text`` is worked out when not given."""

    signal: str
    value: Any
    rule: str
    text: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", f"{self.signal} {fmt(self.value)} {self.rule.split(' ', 1)[1]}")


@dataclass(frozen=True, slots=True)
class CandidateText:
    """What a candidate's item says: written only for candidates that are written (see ``Candidate``)."""

    title: str
    description: str
    evidence_refs: tuple[str, ...]
    meta: Mapping[str, Any]
    # True when ``build_candidates`` has checked every field the way ``ItemInput`` validates it
    # (except meta, checked per request): ``request`` then builds the item without re-validating.
    checked: bool = False


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
    text: CandidateText | _Draft

    @property
    def why(self) -> str:
        """``pressure_score 78.5 ≥ 70; recurring_incidents_30d 2 ≥ 2`` (the plan's reason)."""
        triggers = self.triggers
        return triggers[0].text if len(triggers) == 1 else "; ".join([t.text for t in triggers])

    def written(self) -> CandidateText:
        text = self.text
        if isinstance(text, _Draft):
            text = self.text = text.write(self)
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
        text = self.written()
        if text.checked and meta_problem(meta) is None:
            return ItemInput.prevalidated({
                "env": self.env, "service": self.service, "category": self.category, "title": text.title,
                "description": text.description, "priority": self.priority, "owner": None,
                "due_date": self.due_date, "source": self.source, "dedupe_key": self.dedupe_key,
                "evidence_refs": list(text.evidence_refs), "tags": list(self.tags), "meta": meta,
            }, set(REQUEST_FIELDS))
        return ItemInput(
            env=self.env, service=self.service, category=self.category, title=text.title,
            description=text.description, priority=self.priority, due_date=self.due_date, source=self.source,
            dedupe_key=self.dedupe_key, evidence_refs=list(text.evidence_refs), tags=list(self.tags), meta=meta,
        )


REQUEST_FIELDS = frozenset({"env", "service", "category", "title", "description", "priority", "due_date",
                            "source", "dedupe_key", "evidence_refs", "tags", "meta"})


@dataclass(frozen=True, slots=True)
class Selection:
    """Candidates in rank order, split by the cap."""

    kept: list[Candidate]
    held_back: list[Candidate]
    cap: int

    @property
    def all(self) -> list[Candidate]:
        return [*self.kept, *self.held_back]


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def rule_text(rule: Rule) -> str:
    return f"{rule.signal} {SYMBOLS[rule.operator]} {fmt(rule.threshold)}"


def category_title(name: str) -> str:
    return CATEGORY_TITLES.get(name) or name.replace("_", " ").replace("-", " ").capitalize()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def evidence_lines(evidence: Sequence[Evidence]) -> list[str]:
    """The "Evidence:" section of a description: the first lines, and how many more there are."""
    lines = ["Evidence:"]
    for e in evidence[:MAX_EVIDENCE_LINES]:
        title = f" — {e.title}" if e.title else ""
        source = f" ({e.source})" if e.source else ""
        lines.append(f"- {e.kind} {e.ref}{title}{source}")
    if len(evidence) > MAX_EVIDENCE_LINES:
        lines.append(f"- … and {len(evidence) - MAX_EVIDENCE_LINES} more in the digest")
    return lines


def build_candidates(facts: DigestFacts, policy: BacklogPolicy, today: date) -> list[Candidate]:
    """Every (service, category) whose rules hold, ranked by priority then score.

    Each candidate's text is the plain one (``tests/generation/test_fast_paths.py`` spells it out
    and compares); what is the same for every service (rule texts, title and policy
    lines, due dates) is worked out once per run, and what is the same for a service's
    categories (header, context and evidence blocks) once per service: a digest has thousands.
    The text is written when first read (``Candidate.written``), so held-back candidates never are.
    """
    categories = [_Category(name, category, facts, today)
                  for name, category in policy.categories_for(facts.kind).items()]
    prefix, env, week, score_name = policy.dedupe.key_prefix, facts.env, facts.week, facts.score_name
    source = facts.source
    tags = (f"{facts.kind}-digest", *(("sample-data",) if facts.sample else ()))
    run = _Run(facts, tags, today, prefix)
    owner_for = policy.ownership.owner_for
    key_head: str | None = None
    drafts: list[Candidate] = []
    for s in facts.services:
        signals, service = s.signals, s.service
        blocks: _ServiceBlocks | None = None
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
                blocks = _ServiceBlocks(s, run)
                owner, owner_reason = owner_for(service)
            if key_head is None:  # the first candidate checks the week, as ``generated_key`` does
                generated_key(prefix, week, env, service, cat.name)
                key_head = f"{prefix}:{week}:{env}:"
            drafts.append(Candidate(
                0, env, service, cat.name, cat.priority, cat.due_date, owner, owner_reason, s.score, score_name,
                f"{key_head}{service}:{cat.name}", source, week, found, tags, _Draft(blocks, cat),
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


MAX_KEY = 300  # ``DedupeKey``
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")  # ``Slug``; fullmatch, as pydantic's regex matches
_KEY_PART = re.compile(r"[A-Za-z0-9._-]+")  # the characters of ``DedupeKey``, but its ":" separator


def _slug(value: Any) -> bool:
    return value.__class__ is str and len(value) <= 64 and _SLUG.fullmatch(value) is not None


def _key_part(value: Any) -> bool:
    return value.__class__ is str and _KEY_PART.fullmatch(value) is not None


class _Category:
    """One category of the run's kind, with everything that is the same for every service."""

    __slots__ = ("due_date", "name", "ok", "policy_tail", "priority", "rule_suffix", "rules", "title_head")

    def __init__(self, name: str, category: Category, facts: DigestFacts, today: date) -> None:
        self.name = name
        self.priority = category.priority
        self.due_date = today + timedelta(days=category.due_days)
        marker = "[SAMPLE] " if facts.sample else ""
        self.title_head = f"{marker}{category_title(name)}: "
        self.policy_tail = (f"\n\nPolicy: categories.{name} → priority {category.priority.value}, "
                            f"due {category.due_days} days after the item is created.")
        self.rule_suffix = f" (rule of categories.{name})"
        self.rules = [_Rule(rule) for rule in category.rules]
        self.ok = (_slug(name) and category.priority.__class__ is Priority and not self.title_head[0].isspace()
                   and "\x00" not in self.title_head)


class _Rule:
    """A policy rule with its text; the triggers of the integer values it has seen are kept (a
    trigger is immutable, and a digest repeats the same small counts across services)."""

    __slots__ = ("compare", "head", "rule", "seen", "signal", "tail", "text", "threshold")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.signal = rule.signal
        self.threshold = rule.threshold
        self.compare = COMPARISONS.get(rule.operator)  # numbers against gte/gt/lte/lt: ``Rule.holds``
        self.text = rule_text(rule)
        self.head = f"{rule.signal} "
        self.tail = f" {self.text.split(' ', 1)[1]}"
        self.seen: dict[int, tuple[Trigger]] = {}

    def trigger(self, value: Any) -> tuple[Trigger]:
        """A one-trigger tuple: ``build_candidates`` adds them up."""
        if value.__class__ is int:
            known = self.seen.get(value)
            if known is None:
                known = self.seen[value] = (Trigger(self.signal, value, self.text, f"{self.head}{value}{self.tail}"),)
            return known
        return (Trigger(self.signal, value, self.text, f"{self.head}{fmt(value)}{self.tail}"),)


class _Run:
    """What every candidate's text shares in one run, checked once (see ``CandidateText.checked``)."""

    __slots__ = ("day", "env", "file", "head", "ok", "score_name", "week")

    def __init__(self, facts: DigestFacts, tags: tuple[str, ...], today: date, prefix: str) -> None:
        self.env, self.file, self.week, self.score_name = facts.env, facts.file, facts.week, facts.score_name
        self.day = facts.day.isoformat() if facts.day is not None else None
        self.head = ("SAMPLE DATA: generated from a sample digest (make run), not from real signals.\n\n"
                     if facts.sample else "") + f"Raised by the {facts.title} for "
        # What ``ItemInput`` would refuse or change, checked once per run.
        self.ok = bool(_slug(facts.env) and all(_slug(t) for t in tags) and today.__class__ is date
                       and _key_part(prefix) and _key_part(facts.week) and "\x00" not in self.head)


class _Draft:
    """A candidate whose text is not written yet: the service's and the category's parts."""

    __slots__ = ("blocks", "category")

    def __init__(self, blocks: _ServiceBlocks, category: _Category) -> None:
        self.blocks = blocks
        self.category = category

    def write(self, c: Candidate) -> CandidateText:
        """The candidate's text, assembled from parts shared across services and categories."""
        blocks, cat, found = self.blocks, self.category, c.triggers
        if blocks.head is None:
            blocks.prepare()
        run, s = blocks.run, blocks.facts
        if len(found) == 1:
            t = found[0]
            lines, kinds = f"- {t.text}{cat.rule_suffix}", SIGNAL_KINDS.get(t.signal, NO_KINDS)
            comma, values, rules = t.text, {t.signal: t.value}, [t.rule]
        else:
            lines = "\n".join([f"- {t.text}{cat.rule_suffix}" for t in found])
            kinds = frozenset().union(*[SIGNAL_KINDS.get(t.signal, NO_KINDS) for t in found])
            comma = ", ".join([t.text for t in found])
            values = {t.signal: t.value for t in found}
            rules = [t.rule for t in found]
        tail, refs, refs_ok = blocks.by_kinds.get(kinds) or blocks.evidence(kinds)
        meta: dict[str, Any] = {
            "digest": run.file, "digest_week": run.week, run.score_name: s.score, "band": s.band,
            "signals": values, "rules": rules, "owner_reason": c.owner_reason, "policy_owner": c.owner,
        }
        if run.day is not None:
            meta["digest_date"] = run.day
        description = f"{blocks.head}{lines}{tail}{cat.policy_tail}"
        if len(description) > MAX_TEXT:
            description = clip(description, MAX_TEXT)
        title = f"{cat.title_head}{blocks.title_part}{comma}"
        if len(title) > MAX_TITLE:
            title = clip(title, MAX_TITLE)
        # the parts were checked once (run, category, service, evidence); the trigger texts are
        # in ``comma``, which also ends the title (unless clipped, when it ends with "…")
        checked = (blocks.ok and refs_ok and cat.ok and len(c.dedupe_key) <= MAX_KEY and "\x00" not in comma
                   and not comma[-1].isspace())
        return CandidateText(title, description, refs, meta, checked)


class _ServiceBlocks:
    """The parts of a service's descriptions that do not depend on the category (made when the
    first of its candidates is written)."""

    __slots__ = ("by_kinds", "context", "facts", "head", "kinds", "ok", "run", "title_part")

    def __init__(self, facts: ServiceFacts, run: _Run) -> None:
        self.facts = facts
        self.run = run
        self.head: str | None = None
        self.title_part = self.context = ""
        self.ok = False
        self.kinds: frozenset[str] | None = None
        self.by_kinds: dict[frozenset[str], tuple[str, tuple[str, ...], bool]] = {}

    def prepare(self) -> None:
        service, env = self.facts.service, self.run.env
        self.head = f"{self.run.head}{service} in {env}, because:\n"
        self.title_part = f"{service} ({env}) — "
        self.context = "\n".join(["", "", *self.facts.context])
        self.ok = bool(self.run.ok and _slug(service) and "\x00" not in self.head and "\x00" not in self.context)


    def evidence(self, kinds: frozenset[str]) -> tuple[str, tuple[str, ...], bool]:
        """The context and evidence block, the evidence refs, and whether the block and refs are
        ones ``ItemInput`` takes as they are — for triggers whose signals count ``kinds``."""
        known = self.by_kinds.get(kinds)
        if known is None:
            if self.kinds is None:
                self.kinds = frozenset(e.kind for e in self.facts.evidence)
            counted = kinds & self.kinds
            if counted == self.kinds:  # all of the evidence is of these kinds, or none: as it is
                counted = NO_KINDS
            known = self.by_kinds.get(counted)
            if known is None:
                known = self.by_kinds[counted] = self._block(counted)
            self.by_kinds[kinds] = known
        return known

    def _block(self, kinds: frozenset[str]) -> tuple[str, tuple[str, ...], bool]:
        evidence = _ordered(self.facts.evidence, kinds)
        block = self.context
        if evidence:
            block += "\n".join(["", "", *evidence_lines(evidence)])
        refs = tuple(dict.fromkeys([e.ref for e in evidence]))[:MAX_EVIDENCE_REFS]
        ok = "\x00" not in block
        for ref in refs:
            if ref.__class__ is not str or not 0 < len(ref) <= 500 or "\x00" in ref:
                ok = False
        return block, refs, ok


def _ordered(evidence: Sequence[Evidence], kinds: frozenset[str]) -> list[Evidence]:
    """Evidence of the kinds the triggering signals count first, then the rest."""
    if not kinds:
        return list(evidence)
    return [e for e in evidence if e.kind in kinds] + [e for e in evidence if e.kind not in kinds]


def select(candidates: Sequence[Candidate], cap: int) -> Selection:
    """Keep the first ``cap`` (``defaults.max_items_per_run``); hold back the rest."""
    ordered = sorted(candidates, key=_rank)
    return Selection(kept=ordered[:cap], held_back=ordered[cap:], cap=cap)


_rank = operator.attrgetter("rank")
