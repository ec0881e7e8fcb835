"""Weekly generation on every backend: what a platform team relies on every Monday."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from services.router.domain.models import ItemInput
from services.router.errors import DigestMissing, ValidationFailed
from tests.conftest import StoreFactory
from tests.generation.builders import file_sizes, platform, svc, write_json
from tests.generation.conftest import Gen

NO_DIGEST = "No platform digest found. Run architecture_pressure_tool.digest first."
GATEWAY_EVIDENCE = [
    {"kind": "incident", "ref": "INC-123", "title": "5xx spike", "source": "https://inc.example/INC-123"},
    {"kind": "slo_breach", "ref": "SLO-9", "title": "availability burn 6x"},
    {"kind": "incident", "ref": "INC-131", "title": "5xx spike again"},
]


def key(rest: str, week: str = "2026-W48", env: str = "prod") -> str:
    return f"platform_backlog:{week}:{env}:{rest}"


def w48() -> dict[str, Any]:
    return platform("2026-W48", {
        "prod": [
            svc("gateway", 78.5, "critical", GATEWAY_EVIDENCE, recurring_incidents_30d=2, slo_breaches_7d=1),
            svc("payments", 60.0, "high", [{"kind": "vulnerability", "ref": "CVE-2026-1", "title": "openssl"}],
                open_critical_vulns=1),
            svc("catalog", 12.0, "low"),
        ],
        "staging": [svc("gateway", 30.0, failed_deploys_7d=3)],
    })


def rows(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(i["rank"], i["service"], i["category"], i["priority"], i["owner"], i["action"]) for i in result["items"]]


def test_first_run_creates_owned_prioritized_items_that_say_why(gen: Gen) -> None:
    gen.platform(w48())
    result = gen.weekly()
    assert {k: v for k, v in result.items() if k != "items"} == {
        "env": "prod", "week": "2026-W48", "digest": "platform/2026-W48.json", "stale_digest": False,
        "dry_run": False, "created": 3, "updated": 0, "unchanged": 0, "held_back": 0, "ignored_files": [],
        "suppressed": 0, "cleared": [], "closed_on_clear": 0, "reassigned": [],  # the lifecycle's, all off
    }
    assert rows(result) == [  # P0 first, then P1 by pressure, then category; catalog triggers nothing
        (1, "payments", "security", "P0", "oncall", "create"),
        (2, "gateway", "arch_review", "P1", "oncall", "create"),
        (3, "gateway", "slo_hardening", "P1", "oncall", "create"),
    ]
    stored = gen.by_key()
    assert sorted(stored) == sorted(key(k) for k in ("payments:security", "gateway:arch_review",
                                                      "gateway:slo_hardening"))
    assert [i["id"] for i in result["items"]] == [stored[i["dedupe_key"]]["id"] for i in result["items"]]

    arch = stored[key("gateway:arch_review")]
    assert (arch["priority"], arch["status"], arch["owner"], arch["source"]) == (
        "P1", "open", "oncall", "weekly_pressure_digest")
    assert arch["due_date"] == "2026-12-10"  # today (2026-11-26) + due_days 14
    assert arch["title"] == ("Architecture review: gateway (prod) — "
                             "pressure_score 78.5 ≥ 70, recurring_incidents_30d 2 ≥ 2")
    assert "- pressure_score 78.5 ≥ 70 (rule of categories.arch_review)" in arch["description"]
    assert "- incident INC-123 — 5xx spike (https://inc.example/INC-123)" in arch["description"]
    assert arch["evidence_refs"] == ["INC-123", "INC-131", "SLO-9"]  # incidents first: they triggered it
    assert arch["meta"] == {
        "digest": "platform/2026-W48.json", "digest_week": "2026-W48", "pressure_score": 78.5, "band": "critical",
        "signals": {"pressure_score": 78.5, "recurring_incidents_30d": 2},
        "rules": ["pressure_score ≥ 70", "recurring_incidents_30d ≥ 2"],
        "owner_reason": "ownership.default_owner", "policy_owner": "oncall", "weeks_open": 1,
        "evidence_urls": {"INC-123": "https://inc.example/INC-123"},  # the refs the digest gave a URL for
    }
    security = stored[key("payments:security")]
    assert (security["priority"], security["due_date"], security["evidence_refs"]) == ("P0", "2026-12-03",
                                                                                    ["CVE-2026-1"])
    assert [e["type"] for e in gen.call("events", id=arch["id"])["events"]] == ["created"]


def test_generating_twice_from_the_same_digest_changes_nothing(gen: Gen, make_store: StoreFactory,
                                                               backend: str, tmp_path: Any) -> None:
    gen.platform(w48())
    first = gen.weekly()
    assert first["created"] == 3
    files = file_sizes(tmp_path / "backlog")
    events = {i["id"]: gen.call("events", id=i["id"])["events"] for i in gen.items()}

    gen.clock.advance(hours=30)  # a later re-run, by another process
    again = gen.weekly(store=make_store())
    assert (again["created"], again["updated"], again["unchanged"], again["held_back"]) == (0, 0, 3, 0)
    assert {i["action"] for i in again["items"]} == {"unchanged"}
    assert [i["id"] for i in again["items"]] == [i["id"] for i in first["items"]]
    assert {i["id"]: gen.call("events", id=i["id"])["events"] for i in gen.items()} == events
    if backend == "jsonl":
        assert files and file_sizes(tmp_path / "backlog") == files, "the JSONL files grew"


def test_owner_override_keeps_existing_owners_until_an_explicit_upsert(gen: Gen) -> None:
    gen.platform(w48())
    gen.weekly()
    gen.policy(ownership={"default_owner": "oncall", "overrides": {"gateway": "team-edge"}})

    second = gen.weekly()
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 2, 1)
    gateway = [i for i in second["items"] if i["service"] == "gateway"]
    assert {(i["action"], i["owner"]) for i in gateway} == {("update", "oncall")}
    assert all(i["reason"].endswith("— changed meta.owner_reason, meta.policy_owner") for i in gateway)
    arch = gen.by_key()[key("gateway:arch_review")]
    assert arch["owner"] == "oncall"
    assert arch["meta"]["owner_reason"] == ("kept oncall (owner of the existing item); the policy now assigns "
                                            "team-edge via ownership.overrides[gateway]")
    assert arch["meta"]["policy_owner"] == "team-edge"

    fields = {k: arch[k] for k in ("env", "service", "category", "title", "description", "priority",
                                   "dedupe_key", "evidence_refs", "tags", "meta", "source")}
    fixed = gen.call("upsert", **fields, owner="team-edge")
    assert (fixed["action"], fixed["item"]["owner"], fixed["event"]["type"]) == ("updated", "team-edge",
                                                                                 "owner_changed")

    third = gen.weekly()
    assert {(i["service"], i["category"]): (i["action"], i["owner"]) for i in third["items"]} == {
        ("payments", "security"): ("unchanged", "oncall"),
        ("gateway", "arch_review"): ("update", "team-edge"),  # owner_reason is true again
        ("gateway", "slo_hardening"): ("unchanged", "oncall"),
    }
    arch = gen.by_key()[key("gateway:arch_review")]
    assert (arch["owner"], arch["meta"]["owner_reason"]) == ("team-edge", "ownership.overrides[gateway]")
    assert [e["type"] for e in gen.call("events", id=arch["id"])["events"]] == [
        "created", "updated", "owner_changed", "updated"]

    assert gen.weekly()["unchanged"] == 3  # and steady from then on


def test_cap_keeps_the_highest_by_priority_then_pressure_and_reports_the_rest(gen: Gen) -> None:
    services = [
        svc("a", 10.0, "low", open_critical_vulns=1), svc("b", 20.0, "low", open_critical_vulns=1),  # P0
        svc("c", 90.0, "critical"), svc("d", 80.0, "critical"), svc("e", 75.0, "critical"),  # P1 arch_review
        svc("f", 60.0, "high", slo_breaches_7d=1), svc("g", 65.0, "high", slo_breaches_7d=2),  # P1 slo
        svc("h", 30.0, overdue_followups=3), svc("i", 40.0, overdue_followups=5),  # P2 followup_debt
        svc("j", 35.0, failed_deploys_7d=3), svc("k", 45.0, failed_deploys_7d=4), svc("l", 5.0, "low",
                                                                                    failed_deploys_7d=9),
    ]
    gen.platform(platform("2026-W48", {"prod": services}))
    gen.policy(defaults={"max_items_per_run": 5})
    result = gen.weekly()
    assert (result["created"], result["held_back"]) == (5, 7)
    assert [(i["rank"], i["service"], i["action"]) for i in result["items"]] == [
        (1, "b", "create"), (2, "a", "create"), (3, "c", "create"), (4, "d", "create"), (5, "e", "create"),
        (6, "g", "held_back"), (7, "f", "held_back"), (8, "k", "held_back"), (9, "i", "held_back"),
        (10, "j", "held_back"), (11, "h", "held_back"), (12, "l", "held_back"),
    ]
    assert sorted(i["service"] for i in gen.items()) == ["a", "b", "c", "d", "e"]
    held = result["items"][5]
    assert held["id"] is None and held["dedupe_key"] == key("g:slo_hardening")
    assert held["reason"] == "slo_breaches_7d 2 ≥ 1 (pressure 65) — over max_items_per_run 5 (rank 6)"
    record = orjson.loads((gen.state / "generation" / "last_prod.json").read_bytes())
    assert record["held_back"] == 7 and record["action"] == "auto_generate_weekly"


def test_week_53_digest_gives_week_53_keys(gen: Gen) -> None:
    gen.clock.set(gen.clock.now().replace(year=2027, month=1, day=1))  # Friday of 2026-W53
    gen.platform(platform("2026-W53", {"prod": [svc("gateway", 71.0, "high")]}))
    result = gen.weekly()
    assert (result["week"], result["stale_digest"]) == ("2026-W53", False)
    assert [i["dedupe_key"] for i in result["items"]] == [key("gateway:arch_review", "2026-W53")]
    assert gen.by_key()[key("gateway:arch_review", "2026-W53")]["due_date"] == "2027-01-15"


def monday(label: str) -> date:
    year, week = int(label[:4]), int(label[-2:])
    return date.fromisocalendar(year, week, 1)


def run_week(gen: Gen, label: str, *services: dict[str, Any]) -> dict[str, Any]:
    """The Monday run of ``label`` on a digest of that week."""
    day = monday(label)
    gen.clock.set(gen.clock.now().replace(year=day.year, month=day.month, day=day.day, hour=6, minute=20))
    gen.platform(platform(label, {"prod": list(services) or [svc("gateway", 80.0, "critical")]}))
    result = gen.weekly()
    assert result["week"] == label
    return dict(result)


def streak(gen: Gen, label: str) -> tuple[Any, Any, Any]:
    meta = gen.by_key()[key("gateway:arch_review", label)]["meta"]
    return meta["weeks_open"], meta.get("carried_from"), meta.get("carried_from_week")


def test_carry_over_counts_consecutive_weeks_across_new_year_and_restarts_after_done(gen: Gen) -> None:
    weeks = ["2026-W52", "2026-W53", "2027-W01"]
    for label in weeks:
        run_week(gen, label)
    ids = {label: gen.by_key()[key("gateway:arch_review", label)]["id"] for label in weeks}
    assert [streak(gen, w) for w in weeks] == [
        (1, None, None), (2, ids["2026-W52"], "2026-W52"), (3, ids["2026-W53"], "2026-W53")]
    assert run_week(gen, "2027-W01")["items"][0]["action"] == "unchanged"

    gen.call("set_status", id=ids["2027-W01"], status="done")  # W52 and W53 stay open
    result = run_week(gen, "2027-W02")
    assert streak(gen, "2027-W02") == (1, None, None)
    assert result["items"][0]["reason"].endswith(
        f"new (the previous item {key('gateway:arch_review', '2027-W01')} was closed)")
    run_week(gen, "2027-W03")
    assert streak(gen, "2027-W03")[0] == 2


def test_carry_over_is_kept_as_recorded_and_counts_quiet_weeks_while_open(gen: Gen) -> None:
    run_week(gen, "2026-W47")
    first = gen.by_key()[key("gateway:arch_review", "2026-W47")]["id"]
    run_week(gen, "2026-W48")
    gen.call("set_status", id=first, status="done")  # closed after this week's item was made
    assert run_week(gen, "2026-W48")["unchanged"] == 1
    assert streak(gen, "2026-W48") == (2, first, "2026-W47")

    run_week(gen, "2026-W49", svc("gateway", 10.0, "low"))  # a quiet week: nothing generated
    run_week(gen, "2026-W50")  # the W48 item stayed open through it
    assert streak(gen, "2026-W50")[0] == 4


def test_no_digest_at_all_is_the_runbooks_error_and_writes_nothing(gen: Gen) -> None:
    with pytest.raises(DigestMissing) as caught:
        gen.weekly()
    assert caught.value.message == NO_DIGEST
    assert caught.value.to_dict() == {"error": NO_DIGEST, "env": "prod", "ignored_files": []}
    assert gen.items() == [] and not gen.state.exists()


def test_digest_without_the_env_is_the_runbooks_error(gen: Gen) -> None:
    gen.platform(w48())
    with pytest.raises(DigestMissing) as caught:
        gen.weekly("qa")
    assert caught.value.to_dict() == {"error": NO_DIGEST, "env": "qa", "digest_file": "platform/2026-W48.json",
                                      "digest_envs": ["prod", "staging"], "ignored_files": []}
    assert gen.items() == []


def test_a_clock_set_in_the_past_reads_the_latest_digest_not_after_its_week(gen: Gen) -> None:
    """A backfill or the demo's replay runs with the clock on a past Monday while this week's
    digest already exists: it must read its own week's digest, keyed by that week."""
    gen.platform({**w48(), "week": "2026-W46"})
    gen.platform(w48())
    gen.platform({**w48(), "week": "2026-W50"})  # a later week than the clock (written by a backfill ahead)
    gen.clock.set(datetime(2026, 11, 17, 6, 20, tzinfo=UTC))  # Tuesday of 2026-W47: W46 is the latest for it
    past = gen.weekly()
    assert (past["week"], past["digest"], past["stale_digest"]) == ("2026-W46", "platform/2026-W46.json", True)
    assert {i["dedupe_key"].split(":")[1] for i in past["items"]} == {"2026-W46"}
    gen.clock.set(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    now = gen.weekly()
    assert (now["week"], now["stale_digest"], now["created"]) == ("2026-W48", False, 3)
    assert {i["dedupe_key"]: i["meta"]["weeks_open"] for i in gen.items() if "2026-W48" in i["dedupe_key"]} == {
        key("payments:security"): 3, key("gateway:arch_review"): 3, key("gateway:slo_hardening"): 3}


def test_files_that_are_not_iso_weeks_are_listed_and_logged_not_skipped_silently(
    gen: Gen, caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("2026-W54.json", "2025-W53.json", "latest.json"):  # 2026 and 2025 have 52 ISO weeks
        write_json(gen.reports / "platform" / name, w48())
    write_json(gen.reports / "platform" / "2026-W48.md", b"# the people's twin: not listed")
    with pytest.raises(DigestMissing) as caught:
        gen.weekly()
    expected = [
        {"file": "platform/2025-W53.json", "reason": "not an ISO week: 2025-W53 does not exist: ISO year 2025 has "
                                                     "52 weeks"},
        {"file": "platform/2026-W54.json", "reason": "not an ISO week: 2026-W54 does not exist: ISO year 2026 has "
                                                     "53 weeks"},
        {"file": "platform/latest.json", "reason": "not a digest name (expected YYYY-Www.json, e.g. "
                                                   "2026-W48.json)"},
    ]
    assert caught.value.message == NO_DIGEST
    assert sorted(caught.value.details["ignored_files"], key=lambda i: i["file"]) == expected
    assert "platform/2026-W54.json (not an ISO week" in caplog.text and "WARNING" in caplog.text
    gen.platform(w48())
    for dry_run in (True, False):
        result = gen.weekly(dry_run=dry_run)
        assert result["digest"] == "platform/2026-W48.json"
        assert sorted(result["ignored_files"], key=lambda i: i["file"]) == expected


def broken(mutate: Any) -> dict[str, Any]:
    digest = w48()
    mutate(digest)
    return digest


MALFORMED: list[tuple[str, Any, str | None]] = [
    ("not json", b'{"schema": "platform_priority_digest/v1", "week": ', None),
    ("other schema", broken(lambda d: d.update(schema="platform_priority_digest/v2")), "schema"),
    ("score as text", broken(lambda d: d["envs"]["prod"]["services"][0].update(pressure_score="78.5")),
     "envs.prod.services[0].pressure_score"),
    ("missing signal", broken(lambda d: d["envs"]["prod"]["services"][1]["signals"].pop("slo_breaches_7d")),
     "envs.prod.services[1].signals.slo_breaches_7d"),
    ("unknown band", broken(lambda d: d["envs"]["prod"]["services"][2].update(band="severe")),
     "envs.prod.services[2].band"),
    ("week of another file", broken(lambda d: d.update(week="2026-W47")), "week"),
    ("duplicate service", broken(lambda d: d["envs"]["prod"]["services"].append(svc("catalog"))),
     "envs.prod"),
]


@pytest.mark.parametrize(("case", "content", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_digest_names_file_and_field_and_writes_nothing(
    gen: Gen, case: str, content: Any, field: str | None,
) -> None:
    write_json(gen.reports / "platform" / "2026-W48.json", content)
    with pytest.raises(ValidationFailed) as caught:
        gen.weekly()
    assert caught.value.message.startswith("platform/2026-W48.json: ")
    assert caught.value.details["file"] == "platform/2026-W48.json"
    if field is not None:
        assert caught.value.field == field
        assert f": {field}: " in caught.value.message
    assert gen.items() == [] and not gen.state.exists()


def test_disabled_policy_is_skipped_with_the_reason(gen: Gen) -> None:
    gen.policy(generation={"weekly_from_pressure_digest": False})
    result = gen.weekly()  # no digest needed: the policy says no first
    assert result["skipped"] is True
    assert result["reason"] == "generation.weekly_from_pressure_digest is false in backlog_policy.yml"
    assert (result["created"], result["items"]) == (0, [])
    assert gen.items() == []


def test_a_digest_from_an_earlier_week_is_used_and_flagged_stale(gen: Gen) -> None:
    gen.platform(w48())
    gen.clock.set(gen.clock.now().replace(month=12, day=2))  # 2026-W49
    result = gen.weekly()
    assert (result["stale_digest"], result["week"], result["created"]) == (True, "2026-W48", 3)
    assert all(":2026-W48:" in k for k in gen.by_key())


def test_dry_run_returns_the_plan_and_writes_nothing(gen: Gen, backend: str, tmp_path: Any) -> None:
    gen.platform(w48())
    gen.weekly("staging")  # something already there
    before = file_sizes(tmp_path / "backlog")
    items_before = gen.items()
    record = (gen.state / "generation" / "last_staging.json").read_bytes()

    changed = platform("2026-W48", {"prod": w48()["envs"]["prod"]["services"],
                                    "staging": [svc("gateway", 31.0, failed_deploys_7d=4)]})
    gen.platform(changed)
    plan = gen.weekly("prod", dry_run=True)
    plan_staging = gen.weekly("staging", dry_run=True)
    assert plan["dry_run"] is True and plan["created"] == 3
    assert {i["action"] for i in plan["items"]} == {"create"} and {i["id"] for i in plan["items"]} == {None}
    assert [i["action"] for i in plan_staging["items"]] == ["update"]
    assert gen.items() == items_before
    assert (gen.state / "generation" / "last_staging.json").read_bytes() == record
    assert not (gen.state / "generation" / "last_prod.json").exists()
    if backend == "jsonl":
        assert file_sizes(tmp_path / "backlog") == before

    real = gen.weekly("prod")
    assert [(i["dedupe_key"], i["action"], i["reason"]) for i in real["items"]] == [
        (i["dedupe_key"], i["action"], i["reason"]) for i in plan["items"]]


def test_explicit_owner_is_never_sent_by_generation(gen: Gen) -> None:
    """Generated upserts carry no owner: that is what keeps a person's correction in place."""
    from services.router.generation.candidates import build_candidates
    from services.router.generation.digest_lookup import latest_platform_digest
    from services.router.generation.facts import weekly_facts

    gen.platform(w48())
    found = latest_platform_digest(gen.reports)
    assert found is not None
    facts = weekly_facts(found, "prod")
    policy = gen.context().policy()
    items: list[ItemInput] = [c.item() for c in build_candidates(facts, policy, date(2026, 11, 26))]
    assert items and all(i.owner is None for i in items)
