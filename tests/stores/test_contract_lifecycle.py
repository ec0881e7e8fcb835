"""The store contract for the lifecycle fields (issue 19), on every backend and the Auto store
healthy and degraded: acceptance (``accepted``, its hold on every overdue figure, its expiry),
close on clear, reassignment, event-only notes and the person behind an event (``on_behalf_of``).
"""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pytest

from services.router.clock import FixedClock
from services.router.domain import acceptance
from services.router.domain.enums import EventType, Status
from services.router.domain.queries import ItemQuery
from services.router.domain.revisions import Revision
from services.router.errors import Conflict
from services.router.stores.base import BacklogStore
from tests.conftest import AUTO_BACKENDS, BACKENDS, StoreFactory
from tests.factories import item

TODAY = date(2026, 11, 26)
PAST_DUE = (TODAY - timedelta(days=3)).isoformat()


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def accept(store: BacklogStore, item_id: str, until: date, *, reason: str = "vendor patch due",
           due_on_expiry: date | None = None, on_behalf_of: str | None = None) -> dict[str, object]:
    value = acceptance.acceptance(until=until, reason=reason, by="admin", now=store.clock.now(),
                                  on_behalf_of=on_behalf_of, due_on_expiry=due_on_expiry)
    return store.revise(item_id, Revision(kind="accept", accepted=value), actor="admin",
                        on_behalf_of=on_behalf_of).item


def overdue_figures(store: BacklogStore) -> tuple[int, list[str], int, list[str], list[str]]:
    board = store.dashboard("prod")
    listed = store.list(ItemQuery(env="prod", overdue=True)).items
    p0 = store.overdue_ids("prod", "P0", limit=50)
    return (board["overdue_count"], [r["id"] for r in board["overdue"]], p0.total, p0.ids,
            [r["id"] for r in listed])


def test_an_accepted_overdue_item_counts_nowhere_until_its_date_then_everywhere(
        store: BacklogStore, clock: FixedClock) -> None:
    held = store.upsert(item("k-held", priority="P0", due_date=PAST_DUE), actor="gen").item
    other = store.upsert(item("k-other", priority="P0", due_date=PAST_DUE), actor="gen").item
    assert overdue_figures(store)[0] == 2

    accepted = accept(store, held["id"], TODAY + timedelta(days=2), on_behalf_of="alice@example.com")
    assert accepted["accepted"] == {"until": "2026-11-28", "reason": "vendor patch due", "by": "alice@example.com",
                                    "account": "admin", "at": "2026-11-26T12:00:00.000000Z"}
    assert store.get(held["id"]) == accepted and accepted["status"] == "open"  # keeps its status
    assert overdue_figures(store) == (1, [other["id"]], 1, [other["id"]], [other["id"]])
    board = store.dashboard("prod")
    assert board["accepted_count"] == 1
    assert [(r["id"], r["accepted"]["until"]) for r in board["accepted"]] == [(held["id"], "2026-11-28")]
    assert [r["id"] for r in store.accepted_items("prod")] == [held["id"]]
    assert store.accepted_items("staging") == []

    clock.advance(days=2)  # the last accepted day: still held
    assert overdue_figures(store)[0] == 1
    clock.advance(days=1)  # the day after: counts again, with no write at all
    both = sorted([held["id"], other["id"]])
    figures = overdue_figures(store)
    assert (figures[0], sorted(figures[1]), figures[2], figures[3], figures[4]) == (2, both, 2, both, both)
    assert store.dashboard("prod")["accepted_count"] == 0

    expired = store.revise(held["id"], Revision(kind="expire_acceptance", today=clock.now().date()), actor="system")
    assert expired.action == "updated" and expired.item["accepted"] is None
    again = store.revise(held["id"], Revision(kind="expire_acceptance", today=clock.now().date()), actor="system")
    assert again.action == "unchanged" and again.event is None
    types = [e["type"] for e in store.events(held["id"])]
    assert types == ["created", "accepted", "acceptance_expired"]
    assert store.events(held["id"])[1]["on_behalf_of"] == "alice@example.com"
    assert "on_behalf_of" not in store.events(held["id"])[2]
    assert overdue_figures(store)[0] == 2
    assert store.accepted_items() == []


def test_expiry_restarts_the_due_date_when_the_acceptance_says_so(store: BacklogStore, clock: FixedClock) -> None:
    created = store.upsert(item("k1", due_date=PAST_DUE), actor="gen").item
    until = TODAY + timedelta(days=1)
    restart = acceptance.restarted_due(until, 7)
    accept(store, created["id"], until, due_on_expiry=restart)
    clock.advance(days=3)  # expired, not yet recorded: held through the restarted due date already
    assert store.dashboard("prod")["overdue_count"] == 0
    result = store.revise(created["id"], Revision(kind="expire_acceptance", today=clock.now().date()), actor="system")
    assert result.item["due_date"] == restart.isoformat() == "2026-12-05"
    assert result.event is not None and result.event["meta"]["due_to"] == "2026-12-05"
    assert store.dashboard("prod")["overdue_count"] == 0
    clock.advance(days=7)  # 2026-12-06: past the restarted due date
    assert store.dashboard("prod")["overdue_count"] == 1


def test_unaccept_and_refusals(store: BacklogStore) -> None:
    created = store.upsert(item("k1", due_date=PAST_DUE), actor="gen").item
    assert store.revise(created["id"], Revision(kind="unaccept"), actor="admin").action == "unchanged"
    accept(store, created["id"], TODAY + timedelta(days=5))
    same = accept(store, created["id"], TODAY + timedelta(days=5))
    assert [e["type"] for e in store.events(created["id"])] == ["created", "accepted"]  # same again: no event
    assert same["accepted"] is not None
    result = store.revise(created["id"], Revision(kind="unaccept"), actor="admin")
    assert result.item["accepted"] is None and result.event is not None and result.event["type"] == "unaccepted"
    assert store.dashboard("prod")["overdue_count"] == 1
    store.set_status(created["id"], Status.DONE, actor="admin")
    with pytest.raises(Conflict, match="only open, in_progress or blocked"):
        accept(store, created["id"], TODAY + timedelta(days=5))


def test_close_on_clear_and_reassignment_are_idempotent(store: BacklogStore) -> None:
    created = store.upsert(item("k1"), actor="gen", fallback_owner="team-a").item
    close = Revision(kind="close_on_clear", message="cleared: rules held in no digest of 2",
                     meta={"closed_on_clear": {"at": "2026-11-26", "digests": ["platform/2026-W48.json"]}})
    done = store.revise(created["id"], close, actor="generator")
    assert (done.item["status"], done.item["meta"]["closed_on_clear"]["at"]) == ("done", "2026-11-26")
    assert done.event is not None and (done.event["type"], done.event["actor"]) == ("status_changed", "generator")
    assert store.revise(created["id"], close, actor="generator").action == "unchanged"

    other = store.upsert(item("k2"), actor="gen", fallback_owner="team-a").item
    move = Revision(kind="reassign_owner", owner="team-b", expected_owner="team-a", message="ownership.overrides",
                    meta={"rule_owner": "team-b"})
    moved = store.revise(other["id"], move, actor="generator")
    assert (moved.item["owner"], moved.item["meta"]["rule_owner"]) == ("team-b", "team-b")
    assert moved.event is not None and moved.event["type"] == "owner_changed"
    stale = Revision(kind="reassign_owner", owner="team-c", expected_owner="team-a")
    assert store.revise(other["id"], stale, actor="generator").action == "unchanged"  # someone moved it since


def test_notes_and_the_person_behind_each_event(store: BacklogStore) -> None:
    created = store.upsert(item("k1"), actor="oncall", on_behalf_of="bob@example.com").item
    store.set_status(created["id"], Status.IN_PROGRESS, actor="oncall", on_behalf_of="bob@example.com")
    store.add_comment(created["id"], "looking", actor="oncall", on_behalf_of="carol")
    note = store.add_note(created["id"], EventType.ESCALATED, "escalated to oncall", {"step": 2, "target": "oncall"},
                          actor="scheduler")
    now = store.get(created["id"])
    assert now is not None and (now["status"], now["rev"]) == ("in_progress", 2)  # a note leaves the item alone
    events = store.events(created["id"])
    assert [(e["type"], e["actor"], e.get("on_behalf_of")) for e in events] == [
        ("created", "oncall", "bob@example.com"), ("status_changed", "oncall", "bob@example.com"),
        ("commented", "oncall", "carol"), ("escalated", "scheduler", None)]
    assert events[-1] == note and note["meta"] == {"step": 2, "target": "oncall"}


def test_lifecycle_fields_survive_a_reopen(make_store: StoreFactory, backend: str) -> None:
    store = make_store()
    created = store.upsert(item("k1", due_date=PAST_DUE), actor="gen").item
    accepted = accept(store, created["id"], TODAY + timedelta(days=3), on_behalf_of="dana")
    events = store.events(created["id"])
    again = make_store()
    assert again.get(created["id"]) == accepted
    assert again.events(created["id"]) == events
    assert again.dashboard("prod")["overdue_count"] == 0


def test_a_jsonl_line_from_before_acceptance_reads_as_not_accepted(tmp_path: object, clock: FixedClock) -> None:
    from pathlib import Path

    from services.router.stores.jsonl import JsonlBacklogStore

    folder = Path(str(tmp_path)) / "old"
    store = JsonlBacklogStore(folder, clock=clock)
    created = store.upsert(item("k1", due_date=PAST_DUE), actor="gen").item
    store.close()
    lines = (folder / "items.jsonl").read_bytes().splitlines()
    old = orjson.loads(lines[0])
    del old["accepted"]
    (folder / "items.jsonl").write_bytes(orjson.dumps(old) + b"\n")
    reopened = JsonlBacklogStore(folder, clock=clock)
    try:
        assert reopened.get(created["id"]) == created
        assert reopened.dashboard("prod")["overdue_count"] == 1
    finally:
        reopened.close()
