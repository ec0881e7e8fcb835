"""The pure parts: finding and validating digests, and turning one into ranked candidates."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.router.errors import ValidationFailed
from services.router.generation.candidates import build_candidates, select
from services.router.generation.digest import Found, PlatformDigest, RiskDigest, load_platform_digest
from services.router.generation.digest_lookup import find_risk_digest, latest_platform_digest
from services.router.generation.facts import DigestFacts, weekly_facts
from services.router.policy import BacklogPolicy
from tests.generation.builders import platform, risk, risk_svc, svc, write_json


def test_latest_platform_digest_is_chosen_by_week_label_and_odd_names_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "platform"
    for label in ("2025-W52", "2026-W09", "2026-W10"):
        write_json(folder / f"{label}.json", platform(label, {"prod": [svc("gateway")]}))
    outside = write_json(tmp_path / "elsewhere" / "2026-W05.json", platform("2026-W05", {"prod": []}))
    os.symlink(outside, folder / "2026-W05.json")  # a link out of the folder is not a digest (older: ignored)
    for name in ("latest.json", "2026-W60.json", "2026-W11.json.tmp", ".2026-W12.json.tmp-7", "2026-w13.json",
                 "2026-W14.md"):
        write_json(folder / name, b"not a digest")
    found = latest_platform_digest(tmp_path)
    assert found is not None
    assert (found.name, found.label, found.digest.week) == ("platform/2026-W10.json", "2026-W10", "2026-W10")
    assert latest_platform_digest(tmp_path / "nothing-here") is None
    os.symlink(outside, folder / "2026-W50.json")  # the newest name, planted: refused, not skipped
    with pytest.raises(ValidationFailed, match=r"platform/2026-W50\.json: refused: a symlink pointing outside"):
        latest_platform_digest(tmp_path)


def test_latest_risk_digest_is_chosen_by_date(tmp_path: Path) -> None:
    for day in ("2026-11-09", "2026-11-26", "2026-11-10"):
        write_json(tmp_path / "risk" / f"{day}.json", risk(day, {"prod": [risk_svc("auth", 10.0, "low")]}))
    write_json(tmp_path / "risk" / "2026-13-01.json", b"{")
    found = find_risk_digest(tmp_path).found
    assert found is not None and found.digest.date == date(2026, 11, 26)


def test_producer_extras_are_accepted_and_the_models_round_trip(tmp_path: Path) -> None:
    """What ``signals.digests`` writes today (parts, why, counts…) validates; the models are the contract."""
    data = platform("2026-W48", {"prod": [{**svc("gateway"), "parts": {"incidents": 12.5}}]}, sample=True)
    data["envs"]["prod"]["entered_high_or_critical"] = []
    path = write_json(tmp_path / "2026-W48.json", data)
    digest = load_platform_digest(path)
    assert digest.sample is True and digest.envs["prod"].services[0].signals.incidents_30d == 0
    assert PlatformDigest.model_validate(digest.model_dump(by_alias=True)) == digest
    day = risk("2026-11-26", {"prod": [risk_svc("auth", 30.0, "medium", band_24h_ago=None)]})
    assert RiskDigest.model_validate(day).envs["prod"].services[0].delta_24h is None


def test_a_week_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", platform("2025-W53", {"prod": []}))  # 2025 has 52 ISO weeks
    with pytest.raises(ValidationFailed) as caught:
        load_platform_digest(path)
    assert caught.value.field == "week" and "2025 has 52 weeks" in caught.value.message


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400"])
def test_a_number_json_cannot_hold_is_refused_as_invalid_json(tmp_path: Path, number: str) -> None:
    path = write_json(tmp_path / "2026-W48.json", platform("2026-W48", {"prod": [svc("gateway")]}))
    path.write_bytes(path.read_bytes().replace(b'"risk_delta_7d":', f'"risk_delta_7d":{number},"was":'.encode(), 1))
    with pytest.raises(ValidationFailed) as caught:
        load_platform_digest(path)
    assert caught.value.message.startswith("2026-W48.json: not valid JSON")


def facts_for(*services: dict[str, Any], sample: bool = False) -> DigestFacts:
    digest = PlatformDigest.model_validate(platform("2026-W48", {"prod": list(services)}, sample=sample))
    return weekly_facts(Found(Path("2026-W48.json"), "platform/2026-W48.json", "2026-W48", digest), "prod")


def test_candidates_tie_break_by_service_then_category_and_rank_from_one() -> None:
    facts = facts_for(svc("zeta", 50.0, slo_breaches_7d=1), svc("alpha", 50.0, slo_breaches_7d=1),
                      svc("mid", 50.0, slo_breaches_7d=1, overdue_followups=3))
    candidates = build_candidates(facts, BacklogPolicy(), date(2026, 11, 26))
    assert [(c.rank, c.service, c.category) for c in candidates] == [
        (1, "alpha", "slo_hardening"), (2, "mid", "slo_hardening"), (3, "zeta", "slo_hardening"),
        (4, "mid", "followup_debt")]
    chosen = select(candidates, 0)
    assert (chosen.kept, [c.rank for c in chosen.held_back]) == ([], [1, 2, 3, 4])


def test_sample_digests_make_clearly_marked_items() -> None:
    facts = facts_for(svc("gateway", 90.0, "critical"), sample=True)
    (c,) = build_candidates(facts, BacklogPolicy(), date(2026, 11, 26))
    assert c.title.startswith("[SAMPLE] Architecture review: gateway (prod)")
    assert c.description.startswith("SAMPLE DATA:") and "sample-data" in c.tags


def test_evidence_the_triggering_signal_counts_comes_first() -> None:
    evidence = [{"kind": "incident", "ref": "INC-1"}, {"kind": "deploy", "ref": "DEP-2"},
                {"kind": "vulnerability", "ref": "CVE-3"}]
    facts = facts_for(svc("api", 20.0, "low", evidence, open_critical_vulns=2, failed_deploys_7d=3))
    by_category = {c.category: c.evidence_refs for c in
                   build_candidates(facts, BacklogPolicy(), date(2026, 11, 26))}
    assert by_category == {"security": ("CVE-3", "INC-1", "DEP-2"), "deploy_safety": ("DEP-2", "INC-1", "CVE-3")}
