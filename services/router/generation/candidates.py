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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from services.router.domain.dedupe import generated_key
from services.router.domain.enums import ALL_PRIORITIES, Priority, Source
from services.router.domain.models import MAX_TEXT, MAX_TITLE, ItemInput
from services.router.domain.weeks import iso_week
from services.router.generation.digest import Evidence, Found, PlatformDigest, RiskDigest
from services.router.policy import BacklogPolicy, Category, Rule

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
SIGNAL_LABELS = {
    "risk_avg_7d": "risk avg 7d", "risk_max_7d": "risk max 7d", "risk_delta_7d": "Δ risk 7d",
    "incidents_30d": "incidents 30d", "recurring_incidents_30d": "recurring incidents 30d",
    "slo_breaches_7d": "SLO breaches 7d", "overdue_followups": "overdue follow-ups",
    "open_critical_vulns": "open critical vulns", "failed_deploys_7d": "failed deploys 7d",
}
SYMBOLS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<", "eq": "=", "in": "in"}
MAX_EVIDENCE_REFS = 20
MAX_EVIDENCE_LINES = 10
PRIORITY_RANK = {p: i for i, p in enumerate(ALL_PRIORITIES)}


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


def signed(value: float | None) -> str:
    return "unknown" if value is None else f"{value:+g}"


def weekly_facts(found: Found[PlatformDigest], env: str) -> DigestFacts:
    """The env's section of a platform digest; the caller has checked the env is there."""
    digest = found.digest
    services = []
    for s in digest.envs[env].services:
        figures = s.signals.model_dump()
        shown = ", ".join(
            f"{SIGNAL_LABELS[k]} {signed(v) if k == 'risk_delta_7d' else f'{v:g}'}" for k, v in figures.items()
        )
        services.append(ServiceFacts(
            service=s.service, score=s.pressure_score, band=s.band,
            signals={**figures, "pressure_score": s.pressure_score, "band": s.band},
            evidence=s.evidence, context=(f"Pressure {s.pressure_score:g} (band {s.band}). Signals: {shown}.",),
        ))
    return DigestFacts("weekly", env, digest.week, found.name, services, digest.sample)


def daily_facts(found: Found[RiskDigest], env: str) -> DigestFacts:
    """The env's section of a risk digest; the week is the ISO week of the digest's date."""
    digest = found.digest
    services = []
    for s in digest.envs[env].services:
        parts = ", ".join(f"{k} {v:g}" for k, v in sorted(s.parts.items(), key=lambda kv: -kv[1]) if v)
        context = [f"Risk {s.score:g} (band {s.band}); change 24h {signed(s.delta_24h)}, "
                   f"7d {signed(s.delta_7d)}. Parts: {parts or 'none'}."]
        context += [f"- {line}" for line in s.why[:MAX_EVIDENCE_LINES]]
        services.append(ServiceFacts(
            service=s.service, score=s.score, band=s.band, context=tuple(context),
            signals={"risk_score": s.score, "risk_band": s.band, "delta_24h": s.delta_24h, "delta_7d": s.delta_7d},
        ))
    return DigestFacts("daily", env, iso_week(digest.date), found.name, services, digest.sample, digest.date)


# -- candidates -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that held, with the value that made it hold."""

    signal: str
    value: Any
    rule: str

    @property
    def text(self) -> str:
        return f"{self.signal} {fmt(self.value)} {self.rule.split(' ', 1)[1]}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item generation proposes; ``rank`` is its 1-based place in the run's order."""

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
    title: str
    description: str
    source: Source
    week: str
    evidence_refs: tuple[str, ...]
    triggers: tuple[Trigger, ...]
    tags: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def why(self) -> str:
        """``pressure_score 78.5 ≥ 70; recurring_incidents_30d 2 ≥ 2`` (the plan's reason)."""
        return "; ".join(t.text for t in self.triggers)

    def item(self, meta: Mapping[str, Any] | None = None) -> ItemInput:
        """The upsert request: no explicit owner, so an existing item keeps its owner."""
        return ItemInput(
            env=self.env, service=self.service, category=self.category, title=self.title,
            description=self.description, priority=self.priority, due_date=self.due_date, source=self.source,
            dedupe_key=self.dedupe_key, evidence_refs=list(self.evidence_refs), tags=list(self.tags),
            meta=dict(meta if meta is not None else self.meta),
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


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def rule_text(rule: Rule) -> str:
    return f"{rule.signal} {SYMBOLS[rule.operator]} {fmt(rule.threshold)}"


def triggers_of(category: Category, signals: Mapping[str, Any]) -> tuple[Trigger, ...]:
    return tuple(
        Trigger(rule.signal, signals.get(rule.signal), rule_text(rule))
        for rule in category.rules if rule.holds(signals.get(rule.signal))
    )


def category_title(name: str) -> str:
    return CATEGORY_TITLES.get(name) or name.replace("_", " ").replace("-", " ").capitalize()


def relevant_evidence(evidence: Sequence[Evidence], triggers: Sequence[Trigger]) -> list[Evidence]:
    """Evidence of the kinds the triggering signals count first, then the rest."""
    kinds = {k for t in triggers for k in SIGNAL_EVIDENCE.get(t.signal, ())}
    if not kinds:
        return list(evidence)
    return [e for e in evidence if e.kind in kinds] + [e for e in evidence if e.kind not in kinds]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe(
    facts: DigestFacts, s: ServiceFacts, name: str, category: Category, triggers: Sequence[Trigger],
    evidence: Sequence[Evidence],
) -> str:
    lines = []
    if facts.sample:
        lines += ["SAMPLE DATA: generated from a sample digest (make run), not from real signals.", ""]
    lines.append(f"Raised by the {facts.title} for {s.service} in {facts.env}, because:")
    lines += [f"- {t.text} (rule of categories.{name})" for t in triggers]
    lines += ["", *s.context]
    if evidence:
        lines += ["", "Evidence:"]
        for e in evidence[:MAX_EVIDENCE_LINES]:
            title = f" — {e.title}" if e.title else ""
            source = f" ({e.source})" if e.source else ""
            lines.append(f"- {e.kind} {e.ref}{title}{source}")
        if len(evidence) > MAX_EVIDENCE_LINES:
            lines.append(f"- … and {len(evidence) - MAX_EVIDENCE_LINES} more in the digest")
    lines += ["", f"Policy: categories.{name} → priority {category.priority.value}, "
                  f"due {category.due_days} days after the item is created."]
    return clip("\n".join(lines), MAX_TEXT)


def build_candidates(facts: DigestFacts, policy: BacklogPolicy, today: date) -> list[Candidate]:
    """Every (service, category) whose rules hold, ranked by priority then score."""
    drafts: list[Candidate] = []
    prefix = policy.dedupe.key_prefix
    for s in facts.services:
        owner, owner_reason = policy.ownership.owner_for(s.service)
        for name, category in policy.categories_for(facts.kind).items():
            triggers = triggers_of(category, s.signals)
            if not triggers:
                continue
            evidence = relevant_evidence(s.evidence, triggers)
            why = ", ".join(t.text for t in triggers)
            marker = "[SAMPLE] " if facts.sample else ""
            meta: dict[str, Any] = {
                "digest": facts.file, "digest_week": facts.week, facts.score_name: s.score, "band": s.band,
                "signals": {t.signal: t.value for t in triggers}, "rules": [t.rule for t in triggers],
                "owner_reason": owner_reason, "policy_owner": owner,
            }
            if facts.day is not None:
                meta["digest_date"] = facts.day.isoformat()
            drafts.append(Candidate(
                rank=0, env=facts.env, service=s.service, category=name, priority=category.priority,
                due_date=today + timedelta(days=category.due_days), owner=owner, owner_reason=owner_reason,
                score=s.score, score_name=facts.score_name,
                dedupe_key=generated_key(prefix, facts.week, facts.env, s.service, name),
                title=clip(f"{marker}{category_title(name)}: {s.service} ({facts.env}) — {why}", MAX_TITLE),
                description=describe(facts, s, name, category, triggers, evidence),
                source=facts.source, week=facts.week,
                evidence_refs=tuple(dict.fromkeys(e.ref for e in evidence))[:MAX_EVIDENCE_REFS],
                triggers=triggers, tags=(f"{facts.kind}-digest", *(("sample-data",) if facts.sample else ())),
                meta=meta,
            ))
    drafts.sort(key=lambda c: (PRIORITY_RANK[c.priority.value], -c.score, c.service, c.category))
    return [_ranked(c, i) for i, c in enumerate(drafts, 1)]


def _ranked(c: Candidate, rank: int) -> Candidate:
    # The drafts were made above and are not shared yet: set the rank in place instead of
    # copying every field with ``dataclasses.replace``.
    object.__setattr__(c, "rank", rank)
    return c


def select(candidates: Sequence[Candidate], cap: int) -> Selection:
    """Keep the first ``cap`` (``defaults.max_items_per_run``); hold back the rest."""
    ordered = sorted(candidates, key=lambda c: c.rank)
    return Selection(kept=ordered[:cap], held_back=ordered[cap:], cap=cap)
