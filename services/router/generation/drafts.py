"""The fast path of writing candidates: what is the same across services and categories, once.

A large digest yields thousands of candidates. Everything that is the same for every service
of a run (``RunParts``), for every service of a category (``RunCategory``, ``RunRule``) and for
every category of a service (``ServiceBlocks``) is worked out once, and a candidate's text is
assembled from those parts only when it is first read (``write``). The parts are checked against
the domain's limits as they are made (``CandidateText.checked``), so the item request is built
without a second validation pass — with the same limits ``domain.models`` declares, imported here.
``tests/generation/test_fast_paths.py`` spells out the plain text each candidate must equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.router.domain.enums import Priority
from services.router.domain.models import (
    DEDUPE_KEY_CHARS,
    MAX_DEDUPE_KEY,
    MAX_REF,
    MAX_SLUG,
    MAX_TEXT,
    MAX_TITLE,
    SLUG_PATTERN,
)
from services.router.generation.digest import Evidence
from services.router.generation.facts import DigestFacts, ServiceFacts
from services.router.generation.wording import (
    MAX_EVIDENCE_REFS,
    NO_KINDS,
    SIGNAL_KINDS,
    Trigger,
    category_title,
    clip,
    evidence_lines,
    fmt,
    rule_text,
)
from services.router.policy import COMPARISONS, Category, Rule

LINK_SCHEMES = ("https://", "http://")
# An evidence block: its text, the refs, whether both need no validation, the refs' URLs.
EvidenceBlock = tuple[str, tuple[str, ...], bool, tuple[tuple[str, str], ...]]


# Plain slots (hashable as a frozen one): a run makes one per written item, and a frozen
# dataclass costs four times as much to build. Nothing changes one once it is made.
@dataclass(slots=True, unsafe_hash=True)
class CandidateText:
    """What a candidate's item says: written only for candidates that are written (see ``Candidate``)."""

    title: str
    description: str
    evidence_refs: tuple[str, ...]
    meta: Mapping[str, Any]
    # True when ``build_candidates`` has checked every field the way ``ItemInput`` validates it
    # (except meta, checked per request): ``request`` then builds the item without re-validating.
    checked: bool = False


_SLUG = re.compile(SLUG_PATTERN.strip("^$"))  # ``Slug``; fullmatch, as pydantic's regex matches
_KEY_PART = re.compile(DEDUPE_KEY_CHARS + "+")  # the characters of ``DedupeKey``, but its ":" separator


def _slug(value: Any) -> bool:
    return value.__class__ is str and len(value) <= MAX_SLUG and _SLUG.fullmatch(value) is not None


def _key_part(value: Any) -> bool:
    return value.__class__ is str and _KEY_PART.fullmatch(value) is not None


class RunCategory:
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
        self.rules = [RunRule(rule) for rule in category.rules]
        self.ok = (_slug(name) and category.priority.__class__ is Priority and not self.title_head[0].isspace()
                   and "\x00" not in self.title_head)


class RunRule:
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


class RunParts:
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


def write(blocks: ServiceBlocks, cat: RunCategory, found: tuple[Trigger, ...], owner: str, owner_reason: str,
          dedupe_key: str) -> CandidateText:
    """A candidate's text, assembled from parts shared across services (``blocks``) and
    categories (``cat``). A function, not a draft object per candidate: a run has thousands
    of candidates, most of them held back and never written."""
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
    tail, refs, refs_ok, urls = blocks.by_kinds.get(kinds) or blocks.evidence(kinds)
    meta: dict[str, Any] = {
        "digest": run.file, "digest_week": run.week, run.score_name: s.score, "band": s.band,
        "signals": values, "rules": rules, "owner_reason": owner_reason, "policy_owner": owner,
    }
    if run.day is not None:
        meta["digest_date"] = run.day
    if urls:
        meta["evidence_urls"] = dict(urls)  # the item page links each ref where the digest gave a URL
    description = f"{blocks.head}{lines}{tail}{cat.policy_tail}"
    if len(description) > MAX_TEXT:
        description = clip(description, MAX_TEXT)
    title = f"{cat.title_head}{blocks.title_part}{comma}"
    if len(title) > MAX_TITLE:
        title = clip(title, MAX_TITLE)
    # the parts were checked once (run, category, service, evidence); the trigger texts are
    # in ``comma``, which also ends the title (unless clipped, when it ends with "…")
    checked = (blocks.ok and refs_ok and cat.ok and len(dedupe_key) <= MAX_DEDUPE_KEY and "\x00" not in comma
               and not comma[-1].isspace())
    return CandidateText(title, description, refs, meta, checked)


class ServiceBlocks:
    """The parts of a service's descriptions that do not depend on the category (made when the
    first of its candidates is written)."""

    __slots__ = ("by_kinds", "context", "facts", "head", "kinds", "ok", "run", "title_part")

    def __init__(self, facts: ServiceFacts, run: RunParts) -> None:
        self.facts = facts
        self.run = run
        self.head: str | None = None
        self.title_part = self.context = ""
        self.ok = False
        self.kinds: frozenset[str] | None = None
        self.by_kinds: dict[frozenset[str], EvidenceBlock] = {}

    def prepare(self) -> None:
        service, env = self.facts.service, self.run.env
        self.head = f"{self.run.head}{service} in {env}, because:\n"
        self.title_part = f"{service} ({env}) — "
        self.context = "\n".join(["", "", *self.facts.context])
        self.ok = bool(self.run.ok and _slug(service) and "\x00" not in self.head and "\x00" not in self.context)


    def evidence(self, kinds: frozenset[str]) -> EvidenceBlock:
        """The context and evidence block, the evidence refs, whether the block and refs are ones
        ``ItemInput`` takes as they are, and the refs' http(s) URLs — for triggers whose signals
        count ``kinds``."""
        known = self.by_kinds.get(kinds)
        if known is None:
            if self.kinds is None:
                self.kinds = frozenset({e.kind for e in self.facts.evidence})
            counted = kinds & self.kinds
            if counted == self.kinds:  # all of the evidence is of these kinds, or none: as it is
                counted = NO_KINDS
            known = self.by_kinds.get(counted)
            if known is None:
                known = self.by_kinds[counted] = self._block(counted)
            self.by_kinds[kinds] = known
        return known

    def _block(self, kinds: frozenset[str]) -> EvidenceBlock:
        evidence = _ordered(self.facts.evidence, kinds)
        block = self.context
        if not evidence:
            return block, (), "\x00" not in block, ()
        block += "\n".join(["", "", *evidence_lines(evidence)])
        refs = tuple(dict.fromkeys([e.ref for e in evidence]))
        if len(refs) > MAX_EVIDENCE_REFS:
            refs = refs[:MAX_EVIDENCE_REFS]
        ok = "\x00" not in block
        for ref in refs:
            if ref.__class__ is not str or not 0 < len(ref) <= MAX_REF or "\x00" in ref:
                ok = False
        return block, refs, ok, evidence_urls(evidence, refs)


def evidence_urls(evidence: Sequence[Evidence], refs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(ref, URL) for the refs whose evidence names an http(s) ``source`` (the first one given)."""
    wanted: set[str] | None = None  # made at the first source: most evidence names none
    urls: dict[str, str] = {}
    for e in evidence:
        source = e.source
        if not source:
            continue
        if wanted is None:
            wanted = set(refs)
        if e.ref in wanted and e.ref not in urls and source.lower().startswith(LINK_SCHEMES) and "\x00" not in source:
            urls[e.ref] = source
    return tuple(urls.items())


def _ordered(evidence: Sequence[Evidence], kinds: frozenset[str]) -> list[Evidence]:
    """Evidence of the kinds the triggering signals count first, then the rest."""
    if not kinds:
        return list(evidence)
    return [e for e in evidence if e.kind in kinds] + [e for e in evidence if e.kind not in kinds]
