"""GitLab issues (REST API v4, ``PRIVATE-TOKEN``); ``url`` is the instance, ``/api/v4`` is added.

Issues are ``opened`` or ``closed`` (``state_event`` close / reopen); priorities are labels,
changed with ``add_labels`` / ``remove_labels`` so labels people set stay; assignees are
usernames, looked up once (``GET /users?username=``). The project is its path ("group/sub/name"),
URL-encoded as the API expects.

Marker search: ``GET /projects/:id/issues?search=<item id>&in=description`` (a database query,
consistent at once). Changes: ``updated_after`` ordered by ``updated_at`` ascending.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from services.router.clock import Clock, parse_utc
from services.router.domain.enums import Priority, Status
from services.router.trackers import marker
from services.router.trackers.config import TrackerConfig
from services.router.trackers.errors import TrackerPermanent
from services.router.trackers.http import DEFAULT_TIMEOUT_SECONDS, MAX_PAGES, HttpAdapter, iso_seconds
from services.router.trackers.model import (
    DEFAULT_PAGE_LIMIT,
    ChangePage,
    Cursor,
    IssueDraft,
    IssueUpdate,
    RemoteIssue,
    merge_labels,
    page_of_changes,
)

PAGE_SIZE = 100
KEY = re.compile(r"^([A-Za-z0-9_.][A-Za-z0-9_./-]*)#([0-9]+)$")


class GitLabAdapter(HttpAdapter):
    kind = "gitlab"

    def __init__(self, name: str, config: TrackerConfig, *, transport: httpx.BaseTransport | None = None,
                 environ: Mapping[str, str] | None = None, clock: Clock | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.web_url = config.url.removesuffix("/api/v4")
        super().__init__(name, config, base_url=self.web_url + "/api/v4",
                         header_for=lambda t: {"PRIVATE-TOKEN": t}, transport=transport, environ=environ,
                         clock=clock, timeout_seconds=timeout_seconds)
        self._user_ids: dict[str, int] = {}

    # -- the interface ----------------------------------------------------------------------

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        labels = merge_labels(self.config.labels, draft.labels, self._priority_labels(draft.priority))
        body: dict[str, Any] = {"title": draft.title, "description": marker.compose(draft.description, draft.item_id),
                                "labels": ",".join(labels)}
        user = self._user_id(draft.owner)
        if user is not None:
            body["assignee_ids"] = [user]
        issue = self._issue(self.json("POST", f"/projects/{_pid(project)}/issues", json=body), project)
        if self._state(draft.status) == "closed":
            return self.update(issue.key, IssueUpdate(item_id=draft.item_id, status=draft.status))
        return issue

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        project, iid = _split(key)
        body: dict[str, Any] = {}
        if change.title is not None:
            body["title"] = change.title
        if change.description is not None:
            body["description"] = marker.compose(change.description, change.item_id)
        if change.status is not None:
            body["state_event"] = "close" if self._state(change.status) == "closed" else "reopen"
        add = merge_labels(change.labels or (), self._priority_labels(change.priority))
        if change.priority is not None:
            others = [label for label in self.config.priority_map.values() if label not in add]
            if others:
                body["remove_labels"] = ",".join(others)
        if add:
            body["add_labels"] = ",".join(add)
        if change.owner is not None:
            user = self._user_id(change.owner)
            body["assignee_ids"] = [user] if user is not None else []
        if not body:
            return self.get(key)
        raw = self.json("PUT", f"/projects/{_pid(project)}/issues/{iid}", json=body)
        return self._issue(raw, project)

    def get(self, key: str) -> RemoteIssue:
        project, iid = _split(key)
        return self._issue(self.json("GET", f"/projects/{_pid(project)}/issues/{iid}"), project)

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        marker.marker(item_id)
        params = {"search": item_id, "in": "description", "order_by": "created_at", "sort": "asc",
                  "per_page": PAGE_SIZE}
        found = self.json("GET", f"/projects/{_pid(project)}/issues", params=params)
        return next((i for i in (self._issue(raw, project) for raw in found) if i.item_id == item_id), None)

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        listed: list[RemoteIssue] = []
        exhausted = False
        for page in range(1, MAX_PAGES + 1):
            params = {"updated_after": iso_seconds(cursor.query_since), "order_by": "updated_at", "sort": "asc",
                      "per_page": PAGE_SIZE, "page": page}
            response = self.request("GET", f"/projects/{_pid(project)}/issues", params=params)
            listed.extend(self._issue(raw, project) for raw in self.decode(response, "GET issues"))
            if not response.headers.get("x-next-page"):
                exhausted = True
                break
            if sum(map(cursor.is_new, listed)) > limit:
                break
        return page_of_changes(cursor, listed, exhausted=exhausted, limit=limit)

    def add_comment(self, key: str, body: str) -> None:
        project, iid = _split(key)
        self.request("POST", f"/projects/{_pid(project)}/issues/{iid}/notes", json={"body": body})

    def key_for_url(self, url: str) -> str:
        found = re.fullmatch(re.escape(self.web_url) + r"/(.+?)/-/issues/([0-9]+)/?", url.strip())
        if found is None:
            raise ValueError(f"not a GitLab issue URL: expected {self.web_url}/GROUP/PROJECT/-/issues/<number>")
        return f"{found.group(1)}#{found.group(2)}"

    # -- translation ------------------------------------------------------------------------

    def _issue(self, raw: dict[str, Any], project: str) -> RemoteIssue:
        parsed = marker.parse(raw.get("description"))
        labels = tuple(str(label) for label in raw.get("labels", []))
        priority = next((label for label in labels if label in self.config.priority_map.values()), None)
        assignees = raw.get("assignees") or ([raw["assignee"]] if raw.get("assignee") else [])
        state = "closed" if raw["state"] == "closed" else "open"
        return RemoteIssue(
            key=f"{project}#{raw['iid']}", url=raw["web_url"], title=raw["title"], description=parsed.body,
            status=state, closed=state == "closed", created_at=parse_utc(raw["created_at"]),
            updated_at=parse_utc(raw["updated_at"]), item_id=parsed.item_id, priority=priority, labels=labels,
            assignee=assignees[0]["username"] if assignees else None,
        )

    def _state(self, backlog_status: str) -> str:
        return self.config.statuses[Status(backlog_status)]

    def _priority_labels(self, priority: str | None) -> tuple[str, ...]:
        label = self.config.priority_map.get(Priority(priority)) if priority is not None else None
        return (label,) if label is not None else ()

    def _user_id(self, owner: str | None) -> int | None:
        username = self.config.assignees.get(owner) if owner is not None else None
        if username is None:
            return None
        if username not in self._user_ids:
            users = self.json("GET", "/users", params={"username": username})
            if not users:
                raise TrackerPermanent(self.name, f"assignees.{owner}: no GitLab user {username!r}", kind="config")
            self._user_ids[username] = int(users[0]["id"])
        return self._user_ids[username]


def _pid(project: str) -> str:
    return quote(project, safe="")


def _split(key: str) -> tuple[str, str]:
    found = KEY.match(key)
    if found is None:
        raise ValueError(f"not a GitLab issue key (GROUP/PROJECT#IID): {key!r}")
    return found.group(1), found.group(2)
