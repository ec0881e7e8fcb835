"""Daily generation from the risk digest, on every backend: one item per service and ISO week."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router.errors import DigestMissing, ValidationFailed
from tests.generation.builders import risk, risk_svc, write_json
from tests.generation.conftest import Gen

AUTH_KEY = "platform_backlog:2026-W48:prod:auth:risk_reduction"


def test_daily_is_off_by_default_and_says_so(gen: Gen) -> None:
    result = gen.daily()
    assert (result["skipped"], result["reason"]) == (
        True, "generation.daily_from_risk_digest is false in backlog_policy.yml")
    assert gen.items() == []


def test_a_critical_service_gets_one_item_per_week(gen: Gen) -> None:
    gen.policy(generation={"daily_from_risk_digest": True})
    gen.risk(risk("2026-11-26", {"prod": [
        risk_svc("auth", 82.0, "critical", why=["open_incidents 40: 2 open sev2"]),
        risk_svc("gateway", 60.0, "high"),
    ], "staging": [risk_svc("auth", 90.0, "critical")]}))
    result = gen.daily()
    assert {k: v for k, v in result.items() if k != "items"} == {
        "env": "prod", "week": "2026-W48", "date": "2026-11-26", "digest": "risk/2026-11-26.json",
        "stale_digest": False, "dry_run": False, "created": 1, "updated": 0, "unchanged": 0, "held_back": 0,
        "suppressed": 0, "ignored_files": [], "cleared": [], "closed_on_clear": 0, "reassigned": [],
    }
    assert [(i["dedupe_key"], i["priority"], i["action"], i["reason"]) for i in result["items"]] == [
        (AUTH_KEY, "P1", "create", "risk_band critical in [critical] — new")]
    item = gen.by_key()[AUTH_KEY]
    assert (item["source"], item["due_date"], item["owner"]) == ("daily_risk_digest", "2026-12-03", "oncall")
    assert item["title"] == "Risk reduction: auth (prod) — risk_band critical in [critical]"
    assert "Risk 82 (band critical); change 24h unknown, 7d +5." in item["description"]
    assert "- open_incidents 40: 2 open sev2" in item["description"]
    assert item["meta"]["risk_score"] == 82.0 and item["meta"]["digest_date"] == "2026-11-26"

    gen.clock.advance(days=1)  # Friday: still critical, same week → the same item, refreshed
    gen.risk(risk("2026-11-27", {"prod": [risk_svc("auth", 88.0, "critical")]}))
    again = gen.daily()
    assert [(i["dedupe_key"], i["action"], i["id"]) for i in again["items"]] == [(AUTH_KEY, "update", item["id"])]
    assert len(gen.items("prod")) == 1
    assert gen.by_key()[AUTH_KEY]["due_date"] == "2026-12-03"  # kept

    gen.clock.advance(days=4)  # Tuesday of W49, digest not yet written: stale, still keyed W48
    stale = gen.daily()
    assert (stale["stale_digest"], stale["week"], stale["unchanged"]) == (True, "2026-W48", 1)


def test_daily_without_a_risk_digest_or_env_is_a_clear_error(gen: Gen) -> None:
    gen.policy(generation={"daily_from_risk_digest": True})
    with pytest.raises(DigestMissing) as caught:
        gen.daily()
    assert caught.value.to_dict() == {"error": "No risk digest found. Run risk_history_tool.digest first.",
                                      "env": "prod", "ignored_files": []}
    gen.risk(risk("2026-11-26", {"staging": [risk_svc("auth", 90.0, "critical")]}))
    with pytest.raises(DigestMissing):
        gen.daily()
    gen.clock.advance(days=1)  # a digest of a later day is read once the clock is there
    write_json(gen.reports / "risk" / "2026-11-27.json", {**risk("2026-11-27", {}), "envs": {"prod": {}}})
    with pytest.raises(ValidationFailed) as bad:
        gen.daily()
    assert bad.value.message == "risk/2026-11-27.json: envs.prod.services: Field required"
    assert gen.items() == []


def test_a_clock_set_in_the_past_reads_the_latest_risk_digest_not_after_its_date(gen: Gen) -> None:
    gen.policy(generation={"daily_from_risk_digest": True})
    for day in ("2026-11-20", "2026-11-26"):
        gen.risk(risk(day, {"prod": [risk_svc("auth", 90.0, "critical")]}))
    gen.clock.set(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))  # Tuesday: the 26th's digest is not written yet
    past = gen.daily()
    assert (past["date"], past["week"], past["stale_digest"]) == ("2026-11-20", "2026-W47", True)
    assert [i["dedupe_key"] for i in past["items"]] == ["platform_backlog:2026-W47:prod:auth:risk_reduction"]
