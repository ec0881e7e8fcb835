"""What one tracker kind does beyond the shared contract: the quirks each adapter exists for."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.router.domain.models import new_id
from services.router.trackers import IssueDraft, IssueUpdate, TrackerPermanent, build_adapter
from services.router.trackers.github import GitHubAdapter
from services.router.trackers.jira import JiraAdapter
from tests.trackers import fake_github, fake_gitlab, fake_jira
from tests.trackers.conftest import OWNER, TOKEN_ENV, config, redmine_harness
from tests.trackers.fake_support import START
from tests.trackers.redmine_support import RedmineServer


def gh(fake: fake_github.FakeGitHub, url: str = fake_github.API) -> GitHubAdapter:
    cfg = config("github", url, "acme/platform", priority_map={"P1": "priority:P1", "P3": "priority:P3"})
    adapter = build_adapter("gh", cfg, transport=fake.transport(), environ={TOKEN_ENV: fake_github.TOKEN})
    assert isinstance(adapter, GitHubAdapter)
    return adapter


def test_github_search_lag_is_covered_by_the_created_since_scan() -> None:
    fake = fake_github.FakeGitHub()
    fake.search_lag_seconds = 60
    adapter, item = gh(fake), new_id("bl_")
    before = fake.clock.now()
    created = adapter.create("acme/platform", IssueDraft(item_id=item, title="t", description="d"))
    assert adapter.find_by_marker("acme/platform", item) is None  # not indexed yet: a plain search misses it
    found = adapter.find_by_marker("acme/platform", item, created_since=before)
    assert found is not None and found.key == created.key
    fake.clock.advance(120)
    assert adapter.find_by_marker("acme/platform", item) is not None


def test_github_lists_skip_pull_requests_and_keep_labels_people_added() -> None:
    fake = fake_github.FakeGitHub()
    adapter, item = gh(fake), new_id("bl_")
    fake.add_pull_request("acme/platform", body=f"Fixes it\n\nBacklog Bridge item: {item}")
    issue = adapter.create("acme/platform", IssueDraft(item_id=item, title="t", description="d", priority="P1"))
    assert adapter.find_by_marker("acme/platform", item, created_since=fake.clock.now() - timedelta(hours=1)) == issue
    fake.repos["acme/platform"][2]["labels"].append("needs-triage")  # a person labels the issue
    moved = adapter.update(issue.key, IssueUpdate(item_id=item, priority="P3", status="canceled"))
    assert set(moved.labels) == {"backlog-bridge", "needs-triage", "priority:P3"}
    assert fake.repos["acme/platform"][2]["state_reason"] == "not_planned"
    from services.router.trackers.model import Cursor

    page = adapter.list_changed_since("acme/platform", Cursor.start(fake.clock.now() - timedelta(hours=1)))
    assert [i.key for i in page.issues] == [issue.key]  # the pull request (#1) is not an issue
    with pytest.raises(TrackerPermanent, match="is a pull request") as pull:
        adapter.get("acme/platform#1")
    assert pull.value.kind == "not_found"


def test_github_enterprise_urls_and_keys() -> None:
    adapter = gh(fake_github.FakeGitHub(), url="https://ghe.example.test/api/v3")
    assert adapter.key_for_url("https://ghe.example.test/acme/platform/issues/12") == "acme/platform#12"
    with pytest.raises(ValueError, match="not a GitHub issue URL"):
        adapter.key_for_url("https://github.com/acme/platform/issues/12")


def test_gitlab_sends_the_project_path_encoded_and_refuses_unknown_users() -> None:
    fake = fake_gitlab.FakeGitLab(projects=("acme/edge/platform",))
    cfg = config("gitlab", fake_gitlab.URL + "/api/v4", "acme/edge/platform", assignees={OWNER: "nobody"})
    adapter = build_adapter("gl", cfg, transport=fake.transport(), environ={TOKEN_ENV: fake_gitlab.TOKEN})
    issue = adapter.create("acme/edge/platform", IssueDraft(item_id=new_id("bl_"), title="t", description="d"))
    assert issue.key == "acme/edge/platform#1" and issue.url == f"{fake_gitlab.URL}/acme/edge/platform/-/issues/1"
    assert adapter.key_for_url(issue.url) == issue.key
    with pytest.raises(TrackerPermanent) as caught:
        adapter.update(issue.key, IssueUpdate(item_id=issue.item_id or "", owner=OWNER))
    assert caught.value.kind == "config" and "assignees.team-edge: no GitLab user 'nobody'" in caught.value.reason


def jira(fake: fake_jira.FakeJira, **extra: object) -> JiraAdapter:
    token = fake_jira.CLOUD_TOKEN if fake.cloud else fake_jira.SERVER_TOKEN
    cfg = config("jira", fake.url, "PLAT", status_map={"open": "To Do", "in_progress": "In Progress",
                                                       "blocked": "Blocked", "done": "Done", "canceled": "Won't Do"},
                 assignees={OWNER: "alice"}, **extra)
    adapter = build_adapter("jira", cfg, transport=fake.transport(), environ={TOKEN_ENV: token})
    assert isinstance(adapter, JiraAdapter)
    return adapter


def test_jira_data_center_pages_with_start_at_and_assigns_by_username() -> None:
    fake = fake_jira.FakeJira(cloud=False)
    adapter = jira(fake)
    assert not adapter.cloud
    keys = [adapter.create("PLAT", IssueDraft(item_id=new_id("bl_"), title=f"t{n}", description="d",
                                              owner=OWNER)).key for n in range(3)]
    assert adapter.get(keys[0]).assignee == "alice"
    from services.router.trackers.model import Cursor

    page = adapter.list_changed_since("PLAT", Cursor.start(START - timedelta(days=1)))
    assert [i.key for i in page.issues] == keys


def test_jira_a_closed_issue_whose_workflow_only_reopens_goes_by_way_of_the_open_status() -> None:
    fake = fake_jira.FakeJira()
    adapter = jira(fake)
    issue = adapter.create("PLAT", IssueDraft(item_id=new_id("bl_"), title="t", description="d", status="done"))
    moved = adapter.update(issue.key, IssueUpdate(item_id=issue.item_id or "", status="blocked"))
    assert (moved.status, moved.closed) == ("Blocked", False)  # Done → Reopen → To Do → Block → Blocked


def test_jira_a_status_the_workflow_cannot_reach_names_the_transitions_it_offers() -> None:
    fake = fake_jira.FakeJira()
    cfg = config("jira", fake.url, "PLAT", status_map={"open": "To Do", "in_progress": "In Progress",
                                                       "blocked": "Waiting for vendor", "done": "Done",
                                                       "canceled": "Won't Do"})
    adapter = build_adapter("jira", cfg, transport=fake.transport(), environ={TOKEN_ENV: fake_jira.CLOUD_TOKEN})
    issue = adapter.create("PLAT", IssueDraft(item_id=new_id("bl_"), title="t", description="d", status="done"))
    with pytest.raises(TrackerPermanent) as caught:
        adapter.update(issue.key, IssueUpdate(item_id=issue.item_id or "", status="blocked"))
    assert caught.value.kind == "config"
    assert "no transition from 'To Do' (reopened from 'Done') to 'Waiting for vendor'" in caught.value.reason
    assert "Block → Blocked" in caught.value.reason  # what the workflow does offer


def test_jira_cursor_times_are_minutes_in_the_token_users_zone() -> None:
    fake = fake_jira.FakeJira()
    adapter = jira(fake)
    # 12:00:30 UTC is 13:00 in Berlin: asking for 12:00 UTC would skip an hour of changes
    assert adapter._jql_time(START + timedelta(seconds=30)) == "2026/11/26 13:00"


def test_redmine_reports_a_status_the_workflow_silently_refused(redmine_server: RedmineServer) -> None:
    harness = redmine_harness(redmine_server)
    as_alice = harness.adapter({TOKEN_ENV: redmine_server.alice_token})
    issue = as_alice.create(harness.project, IssueDraft(item_id=new_id("bl_"), title="t", description="d"))
    with pytest.raises(TrackerPermanent) as caught:
        as_alice.update(issue.key, IssueUpdate(item_id=issue.item_id or "", status="canceled"))
    assert caught.value.kind == "config"
    assert f"Redmine kept issue #{issue.key} in 'New'" in caught.value.reason
    assert "status_map.canceled" in caught.value.reason
    as_alice.close()


@pytest.mark.parametrize(("status_map", "words"), [
    ({"blocked": "Feedbak"}, "status_map.blocked: no Redmine status named 'Feedbak'"),
    ({"done": "Resolved"}, "status_map.done: Redmine status 'Resolved' is open"),
])
def test_redmine_status_names_are_checked_against_redmine(redmine_server: RedmineServer,
                                                          status_map: dict[str, str], words: str) -> None:
    harness = redmine_harness(redmine_server)
    mapping = {**{str(k): v for k, v in harness.config.statuses.items()}, **status_map}
    harness.config = harness.config.model_copy(update={"status_map": mapping})
    adapter = harness.adapter()
    issue = adapter.create(harness.project, IssueDraft(item_id=new_id("bl_"), title="t", description="d"))
    backlog_status = next(iter(status_map))
    with pytest.raises(TrackerPermanent) as caught:
        adapter.update(issue.key, IssueUpdate(item_id=issue.item_id or "", status=backlog_status))
    assert caught.value.kind == "config" and words in caught.value.reason
    adapter.close()


def test_redmine_assignees_need_an_existing_login(redmine_server: RedmineServer) -> None:
    harness = redmine_harness(redmine_server)
    harness.config = harness.config.model_copy(update={"assignees": {OWNER: "bob"}})
    adapter = harness.adapter()
    with pytest.raises(TrackerPermanent) as caught:
        adapter.create(harness.project, IssueDraft(item_id=new_id("bl_"), title="t", description="d", owner=OWNER))
    assert "assignees.team-edge: no active Redmine user with login 'bob'" in caught.value.reason
    adapter.close()
