"""The sync engine's behaviour, one suite over the stateful fakes of GitHub, GitLab and Jira.

(The real Redmine runs the acceptance scenario in ``test_sync_redmine.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.router import files
from services.router.clock import FixedClock
from services.router.domain.enums import Status
from tests.conftest import NOW
from tests.trackers.conftest import Harness, github_harness, gitlab_harness, jira_harness
from tests.trackers.sync_support import Bed

FAKES = {"github": github_harness, "gitlab": gitlab_harness, "jira": jira_harness}
PRIORITY_WORD = {"github": "priority:P1", "gitlab": "priority:P1", "jira": "High"}


@pytest.fixture(params=sorted(FAKES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made = FAKES[str(request.param)]()
    yield made
    for adapter in made.opened:
        adapter.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def bed(harness: Harness, clock: FixedClock) -> Iterator[Bed]:
    made = Bed(harness, clock, public_url="https://backlog.example.com")
    yield made
    made.close()


def test_sync_creates_one_issue_per_routed_item_then_changes_nothing(bed: Bed, harness: Harness) -> None:
    first = bed.add("k1", priority="P1", description="Three incidents in 30 days.")
    second = bed.add("k2", priority="P3")
    bed.add("k3", env="staging")  # matches no route
    bed.add("k4", status="done")  # already closed when sync starts: not created
    result = bed.sync()
    assert (result["created"], result["updated"], result["pending"], result["error"]) == (2, 0, 0, None)
    remote = bed.remote()
    assert sorted(k for k in remote if k) == sorted([first, second]) and bed.duplicates() == 0
    issue = remote[first][0]
    assert issue.title == "Item k1" and issue.priority == PRIORITY_WORD[harness.kind]
    assert issue.assignee == harness.assignee and "backlog-bridge" in issue.labels
    assert issue.description == ("Three incidents in 30 days.\n\n"
                                 f"Backlog item: https://backlog.example.com/items/{first}")
    link = bed.link(first)
    assert (link.state, link.remote_key, link.url) == ("linked", issue.key, issue.url)
    before = bed.get(first)
    harness.faults.requests = 0
    again = bed.sync()
    assert (again["created"], again["updated"], again["commented"], again["pulled"]) == (0, 0, 0, 0)
    assert again["requests"] == harness.faults.requests <= 3
    assert bed.duplicates() == 0 and bed.get(first) == before


def test_backlog_changes_reach_the_issue(bed: Bed, harness: Harness) -> None:
    item_id = bed.add("k1", priority="P2")
    bed.sync()
    bed.add("k1", title="Item k1, now with a new title", description="More detail.")
    bed.store.set_status(item_id, Status.BLOCKED, actor="alice")
    bed.store.add_comment(item_id, "waiting for the vendor", actor="alice")
    result = bed.sync()
    assert (result["updated"], result["commented"]) == (1, 1)
    issue = bed.issue(item_id)
    assert issue.title == "Item k1, now with a new title"
    assert issue.description.startswith("More detail.")
    assert issue.status.casefold() == harness.remote("blocked").casefold()
    assert harness.comments(issue.key)[-1] == "alice commented in the backlog:\n\nwaiting for the vendor"
    assert bed.sync()["updated"] == 0 and len(harness.comments(issue.key)) == 1  # sent once
    bed.store.set_status(item_id, Status.DONE, actor="alice")
    bed.sync()
    assert bed.issue(item_id).closed


def test_closed_and_reopened_remotely_come_back_as_one_event_each(bed: Bed, harness: Harness) -> None:
    item_id = bed.add("k1")
    bed.sync()
    key = bed.link(item_id).remote_key
    assert key is not None
    harness.close_remotely(key)
    result = bed.sync()
    assert (result["pulled"], result["updated"]) == (1, 0)  # nothing pushed back
    assert bed.get(item_id)["status"] == "done"
    event = bed.store.events(item_id)[-1]
    assert (event["type"], event["actor"]) == ("status_changed", f"tracker:{bed.name}")
    assert bed.issue(item_id).url in event["message"] and event["message"].startswith("closed in ")
    harness.reopen_remotely(key)
    bed.sync()
    assert bed.get(item_id)["status"] == "open"
    assert [e["actor"] for e in bed.store.events(item_id)][-2:] == [f"tracker:{bed.name}"] * 2
    assert bed.sync()["pulled"] == 0  # seen once, applied once


def test_when_both_sides_changed_the_later_change_wins_and_the_other_is_kept_as_a_comment(
        bed: Bed, harness: Harness, clock: FixedClock) -> None:
    remote_later, backlog_later = bed.add("k1"), bed.add("k2")
    bed.sync()
    bed.store.set_status(remote_later, Status.BLOCKED, actor="alice")
    harness.fake.clock.advance(3600)  # the tracker's change happens an hour after the backlog's
    harness.close_remotely(bed.link(remote_later).remote_key or "")
    clock.advance(hours=5)  # the backlog's change to k2 comes after its close in the tracker
    harness.close_remotely(bed.link(backlog_later).remote_key or "")
    bed.store.set_status(backlog_later, Status.IN_PROGRESS, actor="bob")
    result = bed.sync()
    assert result["conflicts"] == 2
    assert bed.get(remote_later)["status"] == "done"
    assert bed.issue(remote_later).closed  # the tracker's later close stands
    assert bed.get(backlog_later)["status"] == "in_progress"
    assert not bed.issue(backlog_later).closed  # the backlog's later move was pushed
    for item_id, kept in ((remote_later, "the backlog's move to blocked"), (backlog_later, "was closed")):
        note = bed.store.events(item_id)[-1]
        assert note["type"] == "commented" and note["actor"] == f"tracker:{bed.name}"
        assert "Sync conflict" in note["message"] and kept in note["message"]


def test_a_rate_limit_stops_the_run_and_is_waited_out(bed: Bed, harness: Harness, clock: FixedClock) -> None:
    bed.add("k1")
    bed.add("k2")
    harness.faults.next(429, headers={"Retry-After": "120"})
    result = bed.sync()
    assert result["stopped"] and "rate limited" in (result["error"] or "")
    assert result["created"] == 0 and result["pending"] == 2
    harness.faults.requests = 0
    waiting = bed.sync()
    assert waiting["skipped"] and "asked us to wait until" in waiting["reason"]
    assert harness.faults.requests == 0  # not one request before Retry-After has passed
    clock.advance(seconds=121)
    assert bed.sync()["created"] == 2 and bed.duplicates() == 0


def test_a_tracker_down_across_several_syncs_loses_nothing(bed: Bed, harness: Harness, clock: FixedClock) -> None:
    items = [bed.add(f"k{i}") for i in range(4)]
    bed.sync()
    harness.faults.next(503, times=1000)  # down: every request fails
    bed.add("k0", title="renamed while the tracker was down")
    bed.store.set_status(items[1], Status.BLOCKED, actor="alice")
    bed.store.add_comment(items[2], "noted during the outage", actor="alice")
    new = bed.add("k9")
    for _ in range(3):
        harness.faults.requests = 0
        down = bed.sync()
        assert down["stopped"] and down["pending"] == 4
        assert harness.faults.requests == 1  # the pull fails first: one request per run while down
        clock.advance(minutes=5)
    harness.faults.next(200, times=0)
    harness.faults._queue.clear()  # back
    back = bed.sync()
    assert (back["created"], back["updated"], back["commented"], back["pending"]) == (1, 2, 1, 0)
    assert bed.issue(items[0]).title == "renamed while the tracker was down"
    assert bed.issue(items[1]).status.casefold() == harness.remote("blocked").casefold()
    assert harness.comments(bed.link(items[2]).remote_key or "")[-1].endswith("noted during the outage")
    assert bed.link(new).state == "linked" and bed.duplicates() == 0


def test_a_deleted_remote_issue_is_parked_with_its_reason_until_the_item_changes(
        bed: Bed, harness: Harness) -> None:
    item_id = bed.add("k1")
    bed.sync()
    harness.delete_remotely(bed.link(item_id).remote_key or "")
    bed.add("k1", title="changed after the issue was deleted")
    parked = bed.sync()
    assert parked["newly_parked"] == 1 and parked["parked"] == 1 and parked["pending"] == 0
    work = bed.links.work(bed.name)[0]
    assert work.parked and ("404" in (work.parked_reason or "") or "Not Found" in (work.parked_reason or ""))
    harness.faults.requests = 0
    again = bed.sync()
    assert again["newly_parked"] == 0 and again["parked"] == 1
    assert harness.faults.requests <= 3  # the pull only: a parked item is not retried
    bed.add("k1", title="changed again")
    assert bed.sync()["newly_parked"] == 1  # the item changed: tried once more, refused again


def test_a_dry_run_plans_and_sends_nothing(bed: Bed, harness: Harness) -> None:
    linked = bed.add("k1")
    bed.sync()
    bed.add("k1", title="a new title")
    bed.store.add_comment(linked, "a comment", actor="alice")
    new = bed.add("k2")
    harness.faults.requests = 0
    links_before = bed.links.links()
    plan = bed.engine().sync(dry_run=True)
    tracker = plan["trackers"][0]
    assert harness.faults.requests == 0 and bed.links.links() == links_before
    assert [c["id"] for c in tracker["would_create"]] == [new]
    assert tracker["would_update"] == [{"id": linked, "key": bed.link(linked).remote_key, "fields": ["title"]}]
    assert tracker["would_comment"] == [{"id": linked, "key": bed.link(linked).remote_key, "comments": 1}]
    assert [p["project"] for p in tracker["would_pull"]] == [harness.project]
    assert (plan["would_create"], plan["would_update"], plan["would_comment"], plan["would_pull"]) == (1, 1, 1, 1)


CRASH_POINTS = ("tracker:intent_stored", "tracker:after_remote_create", "tracker:link_stored",
                "tracker:after_remote_update", "tracker:after_remote_comment", "tracker:cursor_stored")


class Crash(BaseException):
    """What a kill leaves: everything made durable before the point, nothing after it."""


def crash_at(bed: Bed, point: str) -> None:
    """One sync that dies at the named checkpoint."""
    def crash(name: str) -> None:
        if name == point:
            raise Crash(name)

    files.crash_hook = crash
    try:
        with pytest.raises(Crash):
            bed.sync()
    finally:
        files.crash_hook = None


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_point_creates_no_second_issue_and_loses_no_change(
        harness: Harness, clock: FixedClock, tmp_path: Path, point: str) -> None:
    bed = Bed(harness, clock, backend="jsonl", directory=tmp_path / "backlog")
    try:
        if harness.fake is not None and hasattr(harness.fake, "search_lag_seconds"):
            harness.fake.search_lag_seconds = 600.0  # the search index has not seen the new issue yet
        items = [bed.add(f"k{i}") for i in range(3)]
        bed.sync()
        bed.add("k0", title="renamed")
        bed.store.add_comment(items[1], "a comment", actor="alice")
        harness.close_remotely(bed.link(items[2]).remote_key or "")
        new = bed.add("k3")
        crash_at(bed, point)
        bed.reopen()
        bed.sync()
        assert bed.duplicates() == 0
        assert bed.link(new).state == "linked"
        assert bed.issue(items[0]).title == "renamed"
        assert harness.comments(bed.link(items[1]).remote_key or "")[-1].endswith("a comment")
        assert bed.get(items[2])["status"] == "done"
        assert sum(e["actor"].startswith("tracker:") for e in bed.store.events(items[2])) == 1
    finally:
        bed.close()


class Stopped(Exception):
    """A run stopping part-way for any reason the process survives (a lost lock, a store error)."""


def test_a_batch_stopped_part_way_keeps_what_it_made_and_forgets_what_it_never_sent(
        harness: Harness, clock: FixedClock, tmp_path: Path) -> None:
    """Creates are group-committed: the batch's intents in one write, its links in one write. A run
    that stops after the second create still stores the first one's link; the second's intent
    stays for the search (its POST was answered, its link not yet stored), the unsent ones go."""
    bed = Bed(harness, clock, backend="jsonl", directory=tmp_path / "backlog")
    creates = 0

    def stop_at_the_second_create(name: str) -> None:
        nonlocal creates
        if name == "tracker:after_remote_create":
            creates += 1
            if creates == 2:
                raise Stopped(name)

    try:
        items = [bed.add(f"k{i}") for i in range(5)]
        files.crash_hook = stop_at_the_second_create
        try:
            with pytest.raises(Stopped):
                bed.sync()
        finally:
            files.crash_hook = None
        bed.reopen()
        states = [bed.links.get_link(i) for i in items]
        assert [s.state if s else None for s in states] == ["linked", "creating", None, None, None]
        result = bed.sync()
        assert (result["adopted"], result["created"]) == (1, 3)
        assert bed.duplicates() == 0 and all(bed.link(i).state == "linked" for i in items)
    finally:
        bed.close()


def test_a_sync_with_nothing_to_do_costs_a_constant_number_of_requests(harness: Harness, clock: FixedClock) -> None:
    bed = Bed(harness, clock)
    try:
        for i in range(1000):
            bed.add(f"k{i}")
        assert bed.sync()["created"] == 1000
        clock.advance(minutes=5)
        harness.faults.requests = 0
        quiet = bed.sync()
        assert (quiet["created"], quiet["updated"], quiet["pulled"]) == (0, 0, 0)
        assert harness.faults.requests <= 3, harness.faults.requests
    finally:
        bed.close()


@pytest.mark.parametrize("kind", ["github", "jira"])
def test_a_crash_right_after_a_create_is_found_even_when_search_lags(kind: str, clock: FixedClock,
                                                                     tmp_path: Path) -> None:
    """GitHub's and Jira Cloud's search indexes lag creation (GitLab's search is a database query):
    the walk of the issues created since the intent finds the issue all the same."""
    harness = FAKES[kind]()
    harness.fake.search_lag_seconds = 3600.0
    bed = Bed(harness, clock, backend="jsonl", directory=tmp_path / "backlog")
    try:
        item_id = bed.add("k1")
        crash_at(bed, "tracker:after_remote_create")
        assert bed.link(item_id).state == "creating"
        bed.reopen()
        result = bed.sync()  # the next run, at once: the search does not show the issue yet
        assert (result["adopted"], result["created"]) == (1, 0)
        assert bed.duplicates() == 0
    finally:
        bed.close()
