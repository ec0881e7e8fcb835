"""One harness per tracker kind for the contract suite: the real Redmine and three fakes.

A harness is an adapter plus what a test needs around it: the project to work in, the
tracker's own words for the mapped fields, fault injection, and what a person does on the
tracker (close, reopen, delete), so one test body runs unchanged against all four.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.router.trackers import TrackerAdapter, build_adapter
from services.router.trackers.config import TrackerConfig
from tests.trackers import fake_github, fake_gitlab, fake_jira
from tests.trackers.fake_support import Faults, FaultTransport
from tests.trackers.redmine_support import RedmineServer, problem, unavailable

KINDS = ["redmine", "github", "gitlab", "jira"]
TOKEN_ENV = "TRACKER_TOKEN"
OWNER = "team-edge"
LABEL_PRIORITIES = {"P0": "priority:P0", "P1": "priority:P1", "P2": "priority:P2", "P3": "priority:P3"}


@dataclass
class Harness:
    kind: str
    config: TrackerConfig
    project: str
    missing_project: str
    token: str
    transport: Callable[[], httpx.BaseTransport]
    faults: Faults
    close_remotely: Callable[[str], None]
    reopen_remotely: Callable[[str], None]
    delete_remotely: Callable[[str], None]
    comments: Callable[[str], list[str]]
    assignee: str  # what the tracker shows for OWNER
    opened: list[TrackerAdapter] = field(default_factory=list)
    fake: Any = None  # the in-process fake (None for the real Redmine)

    def adapter(self, environ: dict[str, str] | None = None, **kwargs: Any) -> TrackerAdapter:
        env = {TOKEN_ENV: self.token} if environ is None else environ
        made = build_adapter(f"{self.kind}-test", self.config, transport=self.transport(), environ=env, **kwargs)
        self.opened.append(made)
        return made

    def remote(self, status: str) -> str:
        """The tracker's word for a backlog status."""
        return self.config.statuses[status]  # type: ignore[index]


def config(kind: str, url: str, project: str, **extra: Any) -> TrackerConfig:
    data: dict[str, Any] = {"kind": kind, "url": url, "token_env": TOKEN_ENV, "project": project,
                            "labels": ["backlog-bridge"], **extra}
    return TrackerConfig.model_validate(data)


@pytest.fixture(scope="session")
def redmine_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedmineServer]:
    reason = problem()
    if reason is not None:
        unavailable(reason)
    server = RedmineServer(Path(tmp_path_factory.mktemp("redmine")))
    try:
        yield server
    finally:
        server.stop()


def redmine_harness(server: RedmineServer) -> Harness:
    project = server.new_project()
    faults = Faults()
    cfg = config("redmine", server.url, project,
                 status_map={"open": "New", "in_progress": "In Progress", "blocked": "Feedback", "done": "Closed",
                             "canceled": "Rejected"},
                 priority_map={"P0": "Immediate", "P1": "Urgent", "P2": "High", "P3": "Normal"},
                 assignees={OWNER: "alice"})

    def comments(key: str) -> list[str]:
        issue = server.admin.get(f"/issues/{key}.json", params={"include": "journals"}).json()["issue"]
        return [j["notes"] for j in issue.get("journals", []) if j.get("notes")]

    return Harness(
        "redmine", cfg, project, "no-such-project", server.token,
        lambda: FaultTransport(httpx.HTTPTransport(), faults), faults,
        close_remotely=lambda key: server.set_status(key, "Closed"),
        reopen_remotely=lambda key: server.set_status(key, "New"),
        delete_remotely=server.delete_issue, comments=comments, assignee="alice",
    )


def github_harness() -> Harness:
    fake = fake_github.FakeGitHub()
    cfg = config("github", fake_github.API, "acme/platform", priority_map=LABEL_PRIORITIES,
                 assignees={OWNER: "alice"})
    return Harness("github", cfg, "acme/platform", "acme/nope", fake_github.TOKEN, fake.transport, fake.faults,
                   close_remotely=fake.close, reopen_remotely=fake.reopen, delete_remotely=fake.delete,
                   comments=lambda key: fake.comments.get(key, []), assignee="alice", fake=fake)


def gitlab_harness() -> Harness:
    fake = fake_gitlab.FakeGitLab()
    cfg = config("gitlab", fake_gitlab.URL, "acme/platform", priority_map=LABEL_PRIORITIES,
                 assignees={OWNER: "alice"})
    return Harness("gitlab", cfg, "acme/platform", "acme/nope", fake_gitlab.TOKEN, fake.transport, fake.faults,
                   close_remotely=fake.close, reopen_remotely=fake.reopen, delete_remotely=fake.delete,
                   comments=lambda key: fake.notes.get(key, []), assignee="alice", fake=fake)


def jira_harness() -> Harness:
    fake = fake_jira.FakeJira()
    cfg = config("jira", fake.url, "PLAT",
                 status_map={"open": "To Do", "in_progress": "In Progress", "blocked": "Blocked", "done": "Done",
                             "canceled": "Won't Do"},
                 priority_map={"P0": "Highest", "P1": "High", "P2": "Medium", "P3": "Low"},
                 assignees={OWNER: fake_jira.ALICE_ACCOUNT})
    return Harness("jira", cfg, "PLAT", "NOPE", fake_jira.CLOUD_TOKEN, fake.transport, fake.faults,
                   close_remotely=lambda key: fake.set_status(key, "Done"),
                   reopen_remotely=lambda key: fake.set_status(key, "To Do"),
                   delete_remotely=fake.delete, comments=lambda key: fake.comments.get(key, []),
                   assignee=fake_jira.ALICE_ACCOUNT, fake=fake)


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    kind = str(request.param)
    if kind == "redmine":
        made = redmine_harness(request.getfixturevalue("redmine_server"))
    else:
        made = {"github": github_harness, "gitlab": gitlab_harness, "jira": jira_harness}[kind]()
    yield made
    for adapter in made.opened:
        adapter.close()


@pytest.fixture
def adapter(harness: Harness) -> TrackerAdapter:
    return harness.adapter()
