"""The contract every tracker adapter keeps: one suite, run on the real Redmine and the fakes
of GitHub, GitLab and Jira (``conftest.harness``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router.domain.models import new_id
from services.router.trackers import (
    Cursor,
    IssueDraft,
    IssueUpdate,
    TrackerAdapter,
    TrackerPermanent,
    TrackerRateLimited,
    TrackerRetryable,
)
from tests.trackers.conftest import OWNER, TOKEN_ENV, Harness

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PRIORITY_WORD = {"redmine": "Urgent", "github": "priority:P1", "gitlab": "priority:P1", "jira": "High"}


def draft(item_id: str | None = None, **fields: object) -> IssueDraft:
    values: dict[str, object] = {"item_id": item_id or new_id("bl_"), "title": "Gateway: recurring 5xx",
                                 "description": "Three incidents in 30 days.\n\nOwner: team-edge", "priority": "P1",
                                 "owner": OWNER}
    values.update(fields)
    return IssueDraft(**values)  # type: ignore[arg-type]


def test_create_maps_priority_labels_and_assignee_and_get_reads_it_back(
        harness: Harness, adapter: TrackerAdapter) -> None:
    wanted = draft(labels=("svc-gateway",))
    created = adapter.create(harness.project, wanted)
    for issue in (created, harness.adapter().get(created.key)):  # read back by a fresh adapter (process)
        assert issue.key == created.key
        assert issue.title == "Gateway: recurring 5xx"
        assert issue.description == "Three incidents in 30 days.\n\nOwner: team-edge"
        assert issue.item_id == wanted.item_id
        assert issue.priority == PRIORITY_WORD[harness.kind]
        assert {"backlog-bridge", "svc-gateway"} <= set(issue.labels)
        assert issue.assignee == harness.assignee
        assert issue.status.casefold() == harness.remote("open").casefold()
        assert not issue.closed
    assert adapter.key_for_url(created.url) == created.key


def test_create_in_a_later_status_lands_in_the_mapped_status(harness: Harness, adapter: TrackerAdapter) -> None:
    blocked = adapter.create(harness.project, draft(status="blocked", owner=None, priority=None))
    assert blocked.status.casefold() == harness.remote("blocked").casefold()
    assert not blocked.closed and blocked.assignee is None
    done = adapter.create(harness.project, draft(status="done"))
    assert done.closed and done.status.casefold() == harness.remote("done").casefold()


def test_update_title_description_and_status_through_the_status_map(
        harness: Harness, adapter: TrackerAdapter) -> None:
    issue = adapter.create(harness.project, draft())
    item = issue.item_id
    assert item is not None
    changed = adapter.update(issue.key, IssueUpdate(item_id=item, title="Gateway: 5xx after deploys",
                                                    description="Now also after deploys."))
    again = adapter.get(issue.key)
    for seen in (changed, again):
        assert (seen.title, seen.description, seen.item_id) == ("Gateway: 5xx after deploys",
                                                                "Now also after deploys.", item)
    for status, closed in (("in_progress", False), ("blocked", False), ("done", True), ("open", False),
                           ("canceled", True)):
        moved = adapter.update(issue.key, IssueUpdate(item_id=item, status=status))
        assert moved.status.casefold() == harness.remote(status).casefold(), status
        assert moved.closed is closed, status
        assert adapter.get(issue.key).status == moved.status


def test_update_priority_and_owner(harness: Harness, adapter: TrackerAdapter) -> None:
    issue = adapter.create(harness.project, draft())
    item = issue.item_id
    assert item is not None
    lowered = adapter.update(issue.key, IssueUpdate(item_id=item, priority="P3"))
    assert lowered.priority == {"redmine": "Normal", "jira": "Low"}.get(harness.kind, "priority:P3")
    assert "priority:P1" not in lowered.labels  # GitHub/GitLab: the old priority label goes
    assert "backlog-bridge" in lowered.labels
    unassigned = adapter.update(issue.key, IssueUpdate(item_id=item, owner="someone-unmapped"))
    assert unassigned.assignee is None
    assigned = adapter.update(issue.key, IssueUpdate(item_id=item, owner=OWNER))
    assert assigned.assignee == harness.assignee


def test_add_comment_reaches_the_issue(harness: Harness, adapter: TrackerAdapter) -> None:
    issue = adapter.create(harness.project, draft())
    adapter.add_comment(issue.key, "Rolled back the canary; watching error rates.")
    assert harness.comments(issue.key) == ["Rolled back the canary; watching error rates."]


def test_find_by_marker_finds_the_item_issue_and_nothing_for_another_item(
        harness: Harness, adapter: TrackerAdapter) -> None:
    item, other = new_id("bl_"), new_id("bl_")
    issue = adapter.create(harness.project, draft(item))
    # an issue that only mentions the id in its text is not the item's issue
    adapter.create(harness.project, draft(new_id("bl_"), description=f"Related to {item}."))
    found = adapter.find_by_marker(harness.project, item)
    assert found is not None and found.key == issue.key and found.item_id == item
    assert adapter.find_by_marker(harness.project, other) is None


def test_list_changed_since_returns_only_what_changed_after_the_cursor_closed_ones_too(
        harness: Harness, adapter: TrackerAdapter) -> None:
    first = adapter.create(harness.project, draft())
    second = adapter.create(harness.project, draft())
    page = adapter.list_changed_since(harness.project, Cursor.start(EPOCH))
    assert [i.key for i in page.issues] == [first.key, second.key] and not page.more
    quiet = adapter.list_changed_since(harness.project, page.cursor)
    assert quiet.issues == []
    harness.close_remotely(second.key)
    changed = adapter.list_changed_since(harness.project, quiet.cursor)
    assert [(i.key, i.closed) for i in changed.issues] == [(second.key, True)]
    assert changed.issues[0].status.casefold() == harness.remote("done").casefold()
    harness.reopen_remotely(second.key)
    reopened = adapter.list_changed_since(harness.project, Cursor.from_dict(changed.cursor.to_dict()))
    assert [(i.key, i.closed) for i in reopened.issues] == [(second.key, False)]
    before = harness.faults.requests
    assert adapter.list_changed_since(harness.project, reopened.cursor).issues == []
    assert harness.faults.requests - before == 1  # nothing changed: one request, however many issues


def test_list_changed_since_pages_with_a_limit_and_loses_nothing(harness: Harness, adapter: TrackerAdapter) -> None:
    keys = [adapter.create(harness.project, draft(owner=None)).key for _ in range(5)]
    cursor, seen = Cursor.start(EPOCH), []
    for _ in range(5):
        page = adapter.list_changed_since(harness.project, cursor, limit=2)
        seen += [i.key for i in page.issues]
        cursor = page.cursor
        if not page.more:
            break
    assert seen == keys


def test_errors_are_classified_for_the_outbox(harness: Harness, adapter: TrackerAdapter) -> None:
    issue = adapter.create(harness.project, draft())
    with pytest.raises(TrackerPermanent) as refused:
        harness.adapter({TOKEN_ENV: "not-the-token"}).get(issue.key)
    assert (refused.value.kind, refused.value.status) == ("auth", 401)
    assert "not-the-token" not in str(refused.value)
    with pytest.raises(TrackerPermanent) as unset:
        harness.adapter({}).get(issue.key)
    assert unset.value.kind == "auth" and TOKEN_ENV in unset.value.reason

    with pytest.raises(TrackerPermanent) as no_project:
        adapter.create(harness.missing_project, draft())
    assert no_project.value.kind == "not_found"
    with pytest.raises(TrackerPermanent) as bad_field:
        adapter.create(harness.project, draft(title=""))
    assert bad_field.value.kind == "rejected" and bad_field.value.status in (400, 422)

    harness.faults.next(429, headers={"Retry-After": "7"}, body={"message": "slow down"})
    with pytest.raises(TrackerRateLimited) as limited:
        adapter.get(issue.key)
    assert limited.value.retry_after_seconds == 7 and limited.value.status == 429
    for status in (500, 502, 503):
        harness.faults.next(status, body="<html>upstream unavailable</html>")
        with pytest.raises(TrackerRetryable) as down:
            adapter.get(issue.key)
        assert down.value.status == status and not isinstance(down.value, TrackerRateLimited)
    assert adapter.get(issue.key).key == issue.key  # the faults were one request each

    harness.delete_remotely(issue.key)
    with pytest.raises(TrackerPermanent) as gone:
        adapter.get(issue.key)
    assert gone.value.kind == "not_found"
    with pytest.raises(TrackerPermanent) as gone_on_update:
        adapter.update(issue.key, IssueUpdate(item_id=issue.item_id or "", title="x"))
    assert gone_on_update.value.kind == "not_found"
