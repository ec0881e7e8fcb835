"""The shortcuts that keep a 5k-service run cheap give what the plain definitions give.

``build_candidates`` assembles descriptions from reused parts, builds items without a second
validation pass when it has checked every field itself, and sorts with three plain keys; each
is compared here with the straightforward form (``describe``, ``ItemInput(...)``, one tuple
sort), including the inputs where the shortcut must step aside.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.router.domain.models import MAX_TEXT, ItemInput
from services.router.domain.text import signed
from services.router.generation.candidates import Candidate, _in_rank_order, build_candidates, select
from services.router.generation.digest import Evidence, Found, PlatformDigest
from services.router.generation.drafts import CandidateText
from services.router.generation.facts import DigestFacts, ServiceFacts, weekly_facts
from services.router.generation.plan import build_plan
from services.router.generation.wording import SIGNAL_EVIDENCE, SIGNAL_LABELS, Trigger, clip, evidence_lines, rule_text
from services.router.policy import BacklogPolicy, Category
from services.router.stores.gc_pause import gc_paused
from tests.generation.builders import platform, svc

TODAY = date(2026, 11, 26)
KINDS = ["incident", "slo_breach", "followup", "vulnerability", "deploy", "other"]


# -- the plain definitions the shortcuts must agree with ---------------------------------------
def triggers_of(category: Category, signals: Mapping[str, Any]) -> tuple[Trigger, ...]:
    return tuple(
        Trigger(rule.signal, signals.get(rule.signal), rule_text(rule))
        for rule in category.rules if rule.holds(signals.get(rule.signal))
    )


def relevant_evidence(evidence: Sequence[Evidence], triggers: Sequence[Trigger]) -> list[Evidence]:
    """Evidence of the kinds the triggering signals count first, then the rest."""
    kinds = {k for t in triggers for k in SIGNAL_EVIDENCE.get(t.signal, ())}
    if not kinds:
        return list(evidence)
    return [e for e in evidence if e.kind in kinds] + [e for e in evidence if e.kind not in kinds]


def describe(
    facts: DigestFacts, s: ServiceFacts, name: str, category: Category, triggers: Sequence[Trigger],
    evidence: Sequence[Evidence],
) -> str:
    """A candidate's description, written out plainly (``build_candidates`` assembles the same
    text from parts it reuses across services and categories)."""
    lines = []
    if facts.sample:
        lines += ["SAMPLE DATA: generated from a sample digest (make run), not from real signals.", ""]
    lines.append(f"Raised by the {facts.title} for {s.service} in {facts.env}, because:")
    lines += [f"- {t.text} (rule of categories.{name})" for t in triggers]
    lines += ["", *s.context]
    if evidence:
        lines += ["", *evidence_lines(evidence)]
    lines += ["", f"Policy: categories.{name} → priority {category.priority.value}, "
                  f"due {category.due_days} days after the item is created."]
    return clip("\n".join(lines), MAX_TEXT)




def random_digest(rng: random.Random, services: int, *, sample: bool = False) -> PlatformDigest:
    out = []
    for n in range(services):
        evidence = [{"kind": rng.choice(KINDS), "ref": f"R-{n}-{i}", "title": rng.choice(["", "t — x", "é" * 30]),
                     "source": rng.choice([None, "", "https://x/1", "HTTP://x/2", "javascript:alert(1)"])}
                    for i in range(rng.randrange(0, 25))]
        out.append(svc(f"svc{n}", round(rng.uniform(0, 100), rng.choice([0, 1, 3])),
                       rng.choice(["low", "medium", "high", "critical"]), evidence,
                       recurring_incidents_30d=rng.randrange(4), slo_breaches_7d=rng.randrange(3),
                       overdue_followups=rng.randrange(6), open_critical_vulns=rng.randrange(3),
                       failed_deploys_7d=rng.randrange(5), risk_delta_7d=rng.uniform(-10, 10),
                       incidents_30d=rng.choice([0, 7, 123456789])))
    return PlatformDigest.model_validate(platform("2026-W48", {"prod": out}, sample=sample))


def facts_of(digest: PlatformDigest) -> DigestFacts:
    return weekly_facts(Found(Path("2026-W48.json"), "platform/2026-W48.json", "2026-W48", digest), "prod")


POLICIES = [
    BacklogPolicy(),
    BacklogPolicy.model_validate({"categories": {
        "by-band": {"priority": "P3", "due_days": 1, "rules": [{"signal": "band", "in": ["critical", "high"]},
                                                              {"signal": "band", "eq": "medium"}]},
        "calm_down": {"priority": "P0", "due_days": 0, "rules": [{"signal": "risk_delta_7d", "lt": -2.5},
                                                                {"signal": "pressure_score", "gt": 50.5},
                                                                {"signal": "incidents_30d", "gte": 7}]},
    }, "ownership": {"overrides": {"svc1": "edge"}}}),
]


@pytest.mark.parametrize("sample", [False, True])
@pytest.mark.parametrize("policy", POLICIES)
def test_candidates_are_what_the_plain_definitions_give(policy: BacklogPolicy, sample: bool) -> None:
    facts = facts_of(random_digest(random.Random(7), 60, sample=sample))
    candidates = build_candidates(facts, policy, TODAY)
    assert candidates
    by_service = {s.service: s for s in facts.services}
    for c in candidates:
        s = by_service[c.service]
        category = policy.categories[c.category]
        triggers = triggers_of(category, s.signals)
        evidence = relevant_evidence(s.evidence, triggers)
        assert c.triggers == triggers and [t.text for t in c.triggers] == [t.text for t in triggers]
        assert c.description == describe(facts, s, c.category, category, triggers, evidence)
        assert c.evidence_refs == tuple(dict.fromkeys(e.ref for e in evidence))[:20]
        urls: dict[str, str] = {}
        for e in evidence:
            if e.ref in c.evidence_refs and e.source and e.source.lower().startswith(("https://", "http://")):
                urls.setdefault(e.ref, e.source)
        assert c.meta.get("evidence_urls", {}) == urls
    ranked = sorted(candidates, key=lambda c: (c.priority.value, -c.score, c.service, c.category))
    assert candidates == ranked and [c.rank for c in candidates] == list(range(1, len(candidates) + 1))


def test_the_signals_line_shows_each_signal_as_formatted_alone() -> None:
    digest = random_digest(random.Random(3), 20)
    for model, s in zip(digest.envs["prod"].services, facts_of(digest).services, strict=True):
        figures = model.signals.model_dump()
        shown = ", ".join(f"{SIGNAL_LABELS[k]} {signed(v, missing='unknown') if k == 'risk_delta_7d' else f'{v:g}'}"
                          for k, v in figures.items())
        assert s.context == (f"Pressure {model.pressure_score:g} (band {model.band}). Signals: {shown}.",)
        assert s.signals == {**figures, "pressure_score": model.pressure_score, "band": model.band}


def plain_item(c: Candidate, meta: dict[str, Any]) -> ItemInput:
    return ItemInput(env=c.env, service=c.service, category=c.category, title=c.title, description=c.description,
                     priority=c.priority, due_date=c.due_date, source=c.source, dedupe_key=c.dedupe_key,
                     evidence_refs=list(c.evidence_refs), tags=list(c.tags), meta=dict(meta))


def test_items_built_without_revalidation_equal_validated_ones() -> None:
    facts = facts_of(random_digest(random.Random(11), 40, sample=True))
    candidates = build_candidates(facts, BacklogPolicy(), TODAY)
    assert all(c.checked for c in candidates)
    for c in candidates:
        meta = {**c.meta, "weeks_open": 3, "carried_from": "bl_0123456789ab", "carried_from_week": "2026-W47"}
        fast, plain = c.request(dict(meta)), plain_item(c, meta)
        assert fast == plain and fast.model_dump(mode="json") == plain.model_dump(mode="json")
        assert fast.model_fields_set == plain.model_fields_set and fast.model_dump() == plain.model_dump()
        fast.owner = "someone"  # a built item is an ordinary model
        assert "owner" in fast.model_fields_set and "owner" not in c.request(dict(meta)).model_fields_set


def hand_facts(**service: Any) -> DigestFacts:
    values: dict[str, Any] = {"service": "svc", "score": 80.0, "band": "high",
                              "signals": {"pressure_score": 80.0, "open_critical_vulns": 1}, "context": ("ctx",)}
    return DigestFacts("weekly", "prod", "2026-W48", "f.json", [ServiceFacts(**{**values, **service})])


@pytest.mark.parametrize("facts", [
    hand_facts(evidence=(Evidence(kind="incident", ref="R1", title="a\x00b"),)),
    hand_facts(evidence=(Evidence(kind="vulnerability", ref="R\x001"),)),
    hand_facts(context=("x\x00",)),
    hand_facts(service="Not A Slug"),
    hand_facts(service="s" * 65),
    hand_facts(score=2**70),  # orjson: an integer past 64 bits is not JSON
    hand_facts(band="x" * 70_000),
], ids=["nul-evidence-title", "nul-ref", "nul-context", "bad-service", "long-service", "meta-not-json",
        "meta-too-large"])
def test_what_validation_would_refuse_still_goes_through_it(facts: DigestFacts) -> None:
    policy = BacklogPolicy.model_validate({"categories": {
        "security": {"priority": "P0", "due_days": 7, "rules": [{"signal": "open_critical_vulns", "gte": 1}]},
        "banded": {"priority": "P1", "due_days": 7, "rules": [{"signal": "band", "eq": "nope"}]}}})
    candidates = build_candidates(facts, policy, TODAY)
    assert candidates
    for c in candidates:
        with pytest.raises(ValidationError) as fast:
            c.item()
        with pytest.raises(ValidationError) as plain:
            plain_item(c, dict(c.meta))
        assert str(fast.value) == str(plain.value)


def test_a_title_that_validation_would_strip_is_stripped() -> None:
    policy = BacklogPolicy.model_validate({"categories": {
        "spaced": {"priority": "P1", "due_days": 2, "rules": [{"signal": "band", "eq": "high "}]}}})
    (c,) = build_candidates(hand_facts(band="high ", signals={"band": "high "}), policy, TODAY)
    assert c.title.endswith(" ") and not c.checked
    assert c.item().title == c.title.strip() == plain_item(c, dict(c.meta)).title


@pytest.mark.parametrize("scores", [
    [80.0, math.nan, 80.0, 70, math.nan, 90.5, 80],
    [50.0, 50.0, 50, 60.0, -0.0, 0.0, 0, 100],
    [10.0] * 9,
])
def test_rank_order_is_one_sort_by_priority_score_service_category(scores: list[float]) -> None:
    names = ["zz", "z", "a", "a0", "a.0", "b", "ab", "a", "zz"]
    facts = DigestFacts("weekly", "prod", "2026-W48", "f.json", [
        ServiceFacts(service=names[i % len(names)], score=score, band="high",
                     signals={"pressure_score": 75 + i % 2, "slo_breaches_7d": i % 3, "failed_deploys_7d": 5})
        for i, score in enumerate(scores)])
    candidates = build_candidates(facts, BacklogPolicy(), TODAY)
    def one_sort(cs: list[Candidate]) -> list[Candidate]:
        return sorted(cs, key=lambda c: (c.priority.value, -c.score, c.service, c.category))

    shuffled = list(reversed(candidates))
    assert [id(c) for c in _in_rank_order(shuffled)] == [id(c) for c in one_sort(shuffled)]
    if not any(math.isnan(s) for s in scores):
        assert [id(c) for c in candidates] == [id(c) for c in one_sort(candidates)]


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


def test_held_back_candidates_are_never_written_out() -> None:
    """With the default cap of 50, a large digest holds back nearly every candidate: the plan
    reports them by rank and reason, and their titles and descriptions are never built."""
    facts = facts_of(random_digest(random.Random(5), 80))
    candidates = build_candidates(facts, BacklogPolicy(), TODAY)
    selection = select(candidates, 10)
    plan = build_plan(selection, {}, [], prefix="auto")
    assert len(selection.held_back) > 10
    assert all(isinstance(c.text, CandidateText) for c in selection.kept)
    assert not any(isinstance(c.text, CandidateText) for c in selection.held_back)
    held = [e for e in plan.entries if e.action == "held_back"]
    assert [e.summary()["rank"] for e in held] == list(range(11, len(candidates) + 1))
    assert all("over max_items_per_run 10" in e.reason for e in held)
    # read later, the text is what it would have been
    c = selection.held_back[-1]
    category = BacklogPolicy().categories[c.category]
    s = next(s for s in facts.services if s.service == c.service)
    triggers = triggers_of(category, s.signals)
    assert c.description == describe(facts, s, c.category, category, triggers, relevant_evidence(s.evidence, triggers))
