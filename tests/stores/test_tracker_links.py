"""The tracker link store contract: the same operations give the same results on every backend
(memory, JSONL, Postgres — real, never skipped under CI=true — and the Auto store's choice)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.errors import Conflict, NotFound, StoreUnavailable
from services.router.settings import Settings
from services.router.stores.auto import AutoBacklogStore
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.stores.tracker_links import SyncWork, TrackerLink, TrackerLinkStore
from services.router.stores.tracker_links_jsonl import JsonlLinkStore
from services.router.stores.tracker_links_memory import MemoryLinkStore
from tests.conftest import StoreFactory
from tests.factories import item

LinkFactory = Callable[[BacklogStore], TrackerLinkStore]


@pytest.fixture
def make_links(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LinkFactory]:
    """Opens the link store of a backlog store again (a second process on the same data)."""
    opened: list[TrackerLinkStore] = []

    def factory(store: BacklogStore) -> TrackerLinkStore:
        if backend == "memory":
            found: TrackerLinkStore = shared.setdefault(id(store), MemoryLinkStore(store))
        elif backend == "jsonl":
            found = JsonlLinkStore(tmp_path / "backlog", store)
        else:
            from services.router.stores.tracker_links_postgres import PostgresLinkStore
            from tests.pg_support import session_dsn

            found = PostgresLinkStore(session_dsn(request))
        opened.append(found)
        return found

    shared: dict[int, TrackerLinkStore] = {}
    yield factory
    for found in opened:
        found.close()


@pytest.fixture
def links(store: BacklogStore, make_links: LinkFactory) -> TrackerLinkStore:
    return make_links(store)


def new_item(store: BacklogStore, key: str = "k1") -> str:
    return str(store.upsert(item(key), actor="gen").item["id"])


def linked(item_id: str, key: str = "12", **fields: object) -> TrackerLink:
    values: dict[str, object] = {
        "item_id": item_id, "tracker": "redmine-main", "project": "platform", "state": "linked", "remote_key": key,
        "url": f"https://redmine.example.com/issues/{key}",
        "remote": {"status": "New", "closed": False, "version": "v1", "updated_at": "2026-11-26T12:00:00Z"},
        "pushed": {"title": "Review gateway architecture", "status": "open", "priority": "P2"},
        "linked_at": "2026-11-26T12:00:00.000000Z",
    }
    values.update(fields)
    return TrackerLink(**values)  # type: ignore[arg-type]


def test_a_link_round_trips_and_is_seen_by_another_process(
        make_store: StoreFactory, links: TrackerLinkStore, make_links: LinkFactory) -> None:
    store = make_store()
    item_id = new_item(store)
    link = linked(item_id, comments_through="ev_0001", pushed={"title": "t", "description": "d\n\nBacklog …"})
    links.put_link(link)
    other_store = make_store()
    other = make_links(other_store)
    for view in (links, other):
        assert view.get_link(item_id) == link
        assert view.links("redmine-main") == [link]
        assert view.links("gh") == []
        assert view.link_by_key("redmine-main", "12") == link
        assert view.link_by_key("gh", "12") is None
    changed = linked(item_id, remote={"status": "Closed", "closed": True, "version": "v2"})
    other.put_link(changed)
    assert links.get_link(item_id) == changed


def test_a_link_serializes_every_field() -> None:
    """``to_dict`` is hand-written for speed: it must stay what ``asdict`` gives, field for field."""
    from dataclasses import asdict

    link = linked("bl_000000000001", comments_through="ev_1", intent_at="i", synced_at="s")
    assert link.to_dict() == asdict(link) and TrackerLink.from_dict(link.to_dict()) == link
    assert link.to_dict()["pushed"] is not link.pushed  # a copy: storing it never aliases the link


def test_storing_a_link_does_not_touch_the_item(store: BacklogStore, links: TrackerLinkStore,
                                                clock: FixedClock) -> None:
    item_id = new_item(store)
    before = store.get(item_id)
    events = store.events(item_id)
    clock.advance(hours=1)
    links.put_link(linked(item_id))
    links.put_work(SyncWork("redmine-main", item_id, "push", item_id=item_id, attempts=1, last_error="503"))
    assert store.get(item_id) == before  # updated_at and rev unchanged: a push never triggers another push
    assert store.events(item_id) == events


def test_a_link_needs_its_item_and_an_issue_belongs_to_one_item(store: BacklogStore, links: TrackerLinkStore) -> None:
    with pytest.raises(NotFound):
        links.put_link(linked("bl_000000000000"))
    first, second = new_item(store, "k1"), new_item(store, "k2")
    links.put_link(linked(first))
    with pytest.raises(Conflict) as refused:
        links.put_link(linked(second))
    assert first in refused.value.message
    assert links.get_link(second) is None
    links.put_link(linked(first, remote={"status": "Closed"}))  # the same item again is a replace
    intent = TrackerLink(second, "redmine-main", "platform", "creating", intent_at="2026-11-26T12:00:00Z")
    links.put_link(intent)  # intents and unlinked items hold no key: never in conflict
    links.put_link(TrackerLink(new_item(store, "k3"), "redmine-main", "platform", "unlinked"))
    assert [link.state for link in links.links()] == ["linked", "creating", "unlinked"]
    links.delete_link(first)
    assert links.get_link(first) is None and links.link_by_key("redmine-main", "12") is None
    links.put_link(linked(second))  # the key is free again


def test_a_batch_of_links_is_one_write_all_or_nothing(store: BacklogStore, links: TrackerLinkStore,
                                                       make_links: LinkFactory) -> None:
    """``put_links``: what the sync group-commits (a batch's intents, then its results)."""
    ids = [new_item(store, f"k{i}") for i in range(4)]
    intents = [TrackerLink(i, "redmine-main", "platform", "creating", intent_at="2026-11-26T12:00:00Z")
               for i in ids]
    links.put_links(intents)
    other = make_links(store)
    assert [link.state for link in other.links()] == ["creating"] * 4
    made = [linked(i, key=str(n)) for n, i in enumerate(ids[:3])]
    links.put_links(made, delete=[ids[3], "bl_000000000000"])  # a refused create's intent goes
    for view in (links, other):
        assert view.links() == sorted(made, key=lambda link: link.item_id)
        assert view.link_by_key("redmine-main", "2") == made[2]
    with pytest.raises(NotFound):  # one item is gone: nothing of the batch is stored
        links.put_links([linked(ids[3], key="9"), linked("bl_000000000000", key="10")])
    assert links.get_link(ids[3]) is None and links.link_by_key("redmine-main", "9") is None
    with pytest.raises(Conflict) as refused:  # issue 0 is another item's
        links.put_links([linked(ids[3], key="9"), linked(ids[2], key="0")])
    assert ids[0] in refused.value.message
    assert links.get_link(ids[3]) is None and links.get_link(ids[2]) == made[2]
    with pytest.raises(Conflict):  # two links of the batch name one issue
        links.put_links([linked(ids[3], key="9"), linked(ids[2], key="9")])
    assert other.get_link(ids[3]) is None
    links.put_links([])


def test_the_link_and_work_go_with_their_item(store: BacklogStore, links: TrackerLinkStore,
                                              clock: FixedClock) -> None:
    gone, kept = new_item(store, "k1"), new_item(store, "k2")
    links.put_link(linked(gone, key="1"))
    links.put_link(linked(kept, key="2"))
    links.put_work(SyncWork("redmine-main", gone, "push", item_id=gone, parked_reason="404"))
    links.put_work(SyncWork("redmine-main", "7", "pull"))
    store.set_status(gone, Status.DONE, actor="alice")
    clock.advance(days=200)
    assert store.cleanup(retention_days=180) == 1
    assert links.get_link(gone) is None
    assert [link.item_id for link in links.links()] == [kept]
    assert links.link_by_key("redmine-main", "1") is None
    assert [(w.subject, w.kind) for w in links.work()] == [("7", "pull")]


def test_work_cursors_and_tracker_state(store: BacklogStore, links: TrackerLinkStore,
                                        make_links: LinkFactory) -> None:
    item_id = new_item(store)
    waiting = SyncWork("redmine-main", item_id, "create", item_id=item_id, attempts=2,
                       next_attempt_at="2026-11-26T12:10:00.000000Z", last_error="POST → 503")
    parked = SyncWork("gh", item_id, "push", item_id=item_id, parked_reason="422 Validation Failed", parked_rev=3)
    pull = SyncWork("gh", "acme/platform#4", "pull", created_at="2026-11-26T12:00:00.000000Z")
    for work in (waiting, parked, pull):
        links.put_work(work)
    other = make_links(store)
    assert other.work() == [pull, parked, waiting]  # by tracker, then subject
    assert other.work("redmine-main") == [waiting]
    assert parked.parked and not waiting.parked
    other.delete_work("gh", "acme/platform#4")
    other.delete_work("gh", "no-such-subject")
    assert links.work("gh") == [parked]
    assert links.cursor("gh", "acme/platform") is None
    cursor = {"since": "2026-11-26T12:00:00.000000Z", "seen": {"acme/platform#4": ["2026-11-26T12:00:00Z", "ab"]}}
    links.put_cursor("gh", "acme/platform", cursor)
    links.put_cursor("gh", "acme/other", {"since": "2026-11-25T00:00:00.000000Z", "seen": {}})
    assert other.cursor("gh", "acme/platform") == cursor
    assert links.tracker_state("gh") == {}
    state = {"last_success_at": "2026-11-26T12:00:00.000000Z", "requests": {"ok": 3, "rate_limited": 1}}
    links.put_tracker_state("gh", state)
    assert other.tracker_state("gh") == state and other.tracker_state("redmine-main") == {}


def test_new_comments_after_each_mark(store: BacklogStore, links: TrackerLinkStore) -> None:
    first, second, quiet = new_item(store, "k1"), new_item(store, "k2"), new_item(store, "k3")
    c1 = store.add_comment(first, "one", actor="alice")
    store.set_status(first, Status.BLOCKED, actor="alice")  # not a comment
    c2 = store.add_comment(first, "two", actor="bob")
    c3 = store.add_comment(second, "three", actor="tracker:redmine-main")
    found = links.new_comments({first: None, second: None, quiet: None, "bl_000000000000": None})
    assert {k: [e["message"] for e in v] for k, v in found.items()} == {first: ["one", "two"], second: ["three"]}
    assert found[first][0] == c1 and found[second][0]["actor"] == "tracker:redmine-main"
    assert links.new_comments({first: c1["id"], second: c3["id"]}) == {first: [c2]}
    assert links.new_comments({}) == {}


def test_one_sync_per_tracker_at_a_time_across_processes(store: BacklogStore, links: TrackerLinkStore,
                                                         make_links: LinkFactory) -> None:
    other = make_links(store)
    with links.sync_lock("gh") as held:
        assert held is not None
        held.check()
        with other.sync_lock("gh") as second, other.sync_lock("redmine-main") as unrelated:
            assert second is None  # another process (or replica) holds it
            assert unrelated is not None
    with other.sync_lock("gh", wait_seconds=0.2) as again:
        assert again is not None


def test_the_auto_store_keeps_links_on_postgres_and_waits_while_degraded(
        tmp_path: Path, clock: FixedClock, request: pytest.FixtureRequest) -> None:
    from services.router.stores.tracker_links_postgres import PostgresLinkStore
    from tests.pg_support import free_port, session_dsn

    down = Settings(BACKLOG_POSTGRES_DSN=f"postgresql://u:p@127.0.0.1:{free_port()}/x",  # type: ignore[call-arg]
                    BACKLOG_JSONL_DIR=str(tmp_path / "fallback"), BACKLOG_PG_CONNECT_TIMEOUT_SECONDS=1)
    degraded = AutoBacklogStore(down, clock=clock)
    try:
        with pytest.raises(StoreUnavailable, match="tracker sync waits for Postgres"):
            link_store_for(degraded, down)
    finally:
        degraded.close()
    up = Settings(BACKLOG_POSTGRES_DSN=session_dsn(request), BACKLOG_JSONL_DIR=str(tmp_path / "b"))  # type: ignore[call-arg]
    healthy = AutoBacklogStore(up, clock=clock)
    try:
        found = link_store_for(healthy, up)
        assert isinstance(found, PostgresLinkStore)
        item_id = new_item(healthy, "auto-k1")
        found.put_link(linked(item_id, key="auto-1"))
        assert found.get_link(item_id) is not None
    finally:
        healthy.close()
