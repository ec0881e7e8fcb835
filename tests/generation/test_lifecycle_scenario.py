"""Five consecutive Mondays, each with its digest, on every backend (issue 19's acceptance scenario).

``gateway/security`` triggers in W48, clears in W49 and W50 and is closed on clear at W50's run,
then recurs in W51 (inside the 30-day window) with ``meta.recurrence_of``; ``payments/security``
is missing from W49's digest — no evidence either way — so it clears only at W51. With the
defaults (``on_clear: none``) the same five weeks behave as the runbook says: nothing is
closed, every week's item carries over from the one before, and no lifecycle field appears.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import item
from tests.generation.builders import platform, svc
from tests.generation.conftest import Gen

MONDAYS = [datetime(2026, 11, 23, 6, 20, tzinfo=UTC) + timedelta(weeks=n) for n in range(5)]
WEEKS = ["2026-W48", "2026-W49", "2026-W50", "2026-W51", "2026-W52"]
# Per week: the services listed and whether each has an open critical vulnerability.
GATEWAY = [True, False, False, True, True]
PAYMENTS: list[bool | None] = [True, None, False, False, None]  # None: not in that week's digest
KEY = "platform_backlog:{week}:prod:{service}:security"


def digest(n: int) -> dict[str, Any]:
    services = [svc("gateway", open_critical_vulns=1 if GATEWAY[n] else 0)]
    if PAYMENTS[n] is not None:
        services.append(svc("payments", open_critical_vulns=1 if PAYMENTS[n] else 0))
    services.append(svc("search"))  # never triggers: never an item
    return platform(WEEKS[n], {"prod": services})


def run_weeks(gen: Gen, *, dry_run_first: bool = False) -> list[dict[str, Any]]:
    results = []
    for n, monday in enumerate(MONDAYS):
        gen.clock.set(monday)
        gen.platform(digest(n))
        if dry_run_first:
            preview = gen.weekly(dry_run=True)
            real = gen.weekly()
            assert [c["service"] for c in preview["cleared"]] == [c["service"] for c in real["cleared"]]
            assert preview["closed_on_clear"] == 0  # a dry run closes nothing
        else:
            real = gen.weekly()
        results.append(real)
    return results


def events(gen: Gen, item_id: str) -> list[dict[str, Any]]:
    return list(gen.call("events", id=item_id)["events"])


def test_a_lineage_clears_closes_and_recurs_inside_the_window(gen: Gen) -> None:
    gen.policy(lifecycle={"on_clear": "close", "clear_after_digests": 2, "reopen_window_days": 30})
    gen.clock.set(MONDAYS[0])
    manual = gen.call("upsert", **item(None, service="gateway", category="security",
                                       title="Rotate the gateway keys").model_dump(mode="json", exclude_none=True))
    results = run_weeks(gen, dry_run_first=True)
    items = gen.by_key()
    a = items[KEY.format(week="2026-W48", service="gateway")]
    b = items[KEY.format(week="2026-W51", service="gateway")]
    c = items[KEY.format(week="2026-W52", service="gateway")]
    p48 = items[KEY.format(week="2026-W48", service="payments")]

    # W49: one clear digest is not enough; W50: two in a row close gateway's item.
    assert [r["closed_on_clear"] for r in results] == [0, 0, 1, 1, 0]
    w50 = results[2]["cleared"]
    assert [(x["service"], x["on_clear"], x["closed"]) for x in w50] == [("gateway", "close", [a["id"]])]
    assert w50[0]["digests"] == ["platform/2026-W50.json", "platform/2026-W49.json"]
    assert "open_critical_vulns ≥ 1 held in none of the last 2 digest(s) listing gateway" in w50[0]["reason"]
    closed = events(gen, a["id"])[-1]
    assert (closed["type"], closed["actor"], closed["meta"]["from"], closed["meta"]["to"]) == (
        "status_changed", "generator", "open", "done")
    assert "platform/2026-W49.json" in closed["message"] and "open_critical_vulns" in closed["message"]
    assert a["status"] == "done" and a["meta"]["closed_on_clear"]["at"] == "2026-12-07"

    # payments was missing from W49: W50 alone is one clear digest, W51 makes two.
    w51 = results[3]["cleared"]
    assert [(x["service"], x["closed"], x["digests"]) for x in w51] == [
        ("payments", [p48["id"]], ["platform/2026-W51.json", "platform/2026-W50.json"])]
    assert p48["status"] == "done"

    # W51: gateway triggers again within 30 days of its close: a recurrence of the closed item.
    assert b["meta"]["recurrence_of"] == a["id"] and b["meta"]["recurrence_closed_on"] == "2026-12-07"
    assert "recurrence" in b["tags"] and b["status"] == "open"
    assert b["description"].startswith(f"Recurrence: this problem was closed on clear on 2026-12-07 ({a['id']})")
    assert b["meta"]["weeks_open"] == 1 and "carried_from" not in b["meta"]  # the streak restarted
    # W52: still open, so the week's item carries over from W51's; it is not a recurrence itself.
    assert c["meta"]["carried_from"] == b["id"] and "recurrence_of" not in c["meta"]

    # The manual item of the same problem was never touched, and re-running W52 changes nothing.
    assert [e["type"] for e in events(gen, manual["item"]["id"])] == ["created"]
    again = gen.weekly()
    assert (again["created"], again["updated"], again["closed_on_clear"], again["cleared"]) == (0, 0, 0, [])


def test_with_the_defaults_the_same_weeks_follow_the_runbook(gen: Gen) -> None:
    results = run_weeks(gen)
    assert [(r["created"], r["closed_on_clear"], r["cleared"], r["suppressed"]) for r in results] == [
        (2, 0, [], 0), (0, 0, [], 0), (0, 0, [], 0), (1, 0, [], 0), (1, 0, [], 0)]
    items = gen.by_key()
    assert sorted(items) == sorted(KEY.format(week=w, service=s) for w, s in (
        ("2026-W48", "gateway"), ("2026-W48", "payments"), ("2026-W51", "gateway"), ("2026-W52", "gateway")))
    assert all(i["status"] == "open" for i in items.values())  # items from earlier weeks remain
    a = items[KEY.format(week="2026-W48", service="gateway")]
    b = items[KEY.format(week="2026-W51", service="gateway")]
    c = items[KEY.format(week="2026-W52", service="gateway")]
    assert (b["meta"]["carried_from"], b["meta"]["weeks_open"]) == (a["id"], 4)  # W48 still open: 1 + 3 weeks
    assert (c["meta"]["carried_from"], c["meta"]["weeks_open"]) == (b["id"], 5)
    for record in items.values():
        assert not {"recurrence_of", "closed_on_clear"} & set(record["meta"]) and "recurrence" not in record["tags"]
        assert [e["type"] for e in events(gen, record["id"])] == ["created"]


@pytest.mark.parametrize("backend", ["memory"])
def test_comment_on_clear_is_once_per_clearing(gen: Gen, backend: str) -> None:
    gen.policy(lifecycle={"on_clear": "comment"})
    results = run_weeks(gen)
    items = gen.by_key()
    a = items[KEY.format(week="2026-W48", service="gateway")]
    comments = [e for e in events(gen, a["id"]) if e["type"] == "commented"]
    # Cleared at W50: one comment; W51 triggers again (a new item), so W48's item hears of one clearing only.
    assert len(comments) == 1 and comments[0]["actor"] == "generator"
    assert comments[0]["meta"]["on_clear"]["clearing"] == "2026-W48"
    assert a["status"] == "open" and [r["closed_on_clear"] for r in results] == [0, 0, 0, 0, 0]
    assert [x["commented"] for x in results[2]["cleared"]] == [[a["id"]]]
    gen.weekly()  # a re-run of W52 adds nothing
    assert len([e for e in events(gen, a["id"]) if e["type"] == "commented"]) == 1
