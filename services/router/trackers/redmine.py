"""Redmine (REST API, JSON, ``X-Redmine-API-Key``): statuses, priorities and users by name.

Redmine speaks in ids; the config speaks in names, so the adapter reads the status, priority
and tracker lists once per adapter and the users it assigns once per login. What the REST API
does quietly and this adapter refuses to hide:

- a status the workflow does not allow is silently ignored (on create even for admins); the
  adapter sets it after creating and reads the issue back, and a status that did not stick is
  a permanent ``config`` error naming it;
- closed issues are listed only with ``status_id=*``;
- Redmine has no labels: they are a ``Labels:`` line in the description footer.

Search for the marker: ``description=~<item id>`` (a LIKE, consistent at once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.router.clock import Clock, parse_utc
from services.router.domain.enums import CLOSED_STATUSES, Priority, Status
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


class RedmineAdapter(HttpAdapter):
    kind = "redmine"

    def __init__(self, name: str, config: TrackerConfig, *, transport: httpx.BaseTransport | None = None,
                 environ: Mapping[str, str] | None = None, clock: Clock | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(name, config, base_url=config.url, header_for=lambda t: {"X-Redmine-API-Key": t},
                         transport=transport, environ=environ, clock=clock, timeout_seconds=timeout_seconds)
        self._statuses: dict[str, tuple[int, str, bool]] | None = None  # casefolded name → id, name, closed
        self._priorities: dict[str, int] | None = None
        self._trackers: dict[str, int] | None = None
        self._user_ids: dict[str, int] = {}
        self._logins: dict[int, str] = {}
        self._resolved_logins = False

    # -- the interface ----------------------------------------------------------------------

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        labels = merge_labels(self.config.labels, draft.labels)
        fields: dict[str, Any] = {"subject": draft.title,
                                  "description": marker.compose(draft.description, draft.item_id, labels)}
        if self.config.issue_type is not None:
            fields["tracker_id"] = self._lookup(self._tracker_ids(), self.config.issue_type, "issue_type", "tracker")
        fields.update(self._priority_field(draft.priority))
        fields.update(self._assignee_field(draft.owner, unassign=False))
        body = self.json("POST", f"/projects/{project}/issues.json", json={"issue": fields})
        issue = self._issue(body["issue"])
        if not self._has_status(issue, draft.status):
            return self.update(issue.key, IssueUpdate(item_id=draft.item_id, status=draft.status))
        return issue

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        fields: dict[str, Any] = {}
        current: RemoteIssue | None = None
        if change.title is not None:
            fields["subject"] = change.title
        if change.description is not None or change.labels is not None:
            current = self.get(key)
            body = current.description if change.description is None else change.description
            labels = merge_labels(self.config.labels, current.labels, change.labels or ())
            fields["description"] = marker.compose(body, change.item_id, labels)
        if change.priority is not None:
            fields.update(self._priority_field(change.priority))
        if change.owner is not None:
            fields.update(self._assignee_field(change.owner, unassign=True))
        status_id: int | None = None
        status_name = ""
        if change.status is not None:
            status_id, status_name = self._status_for(change.status)
            fields["status_id"] = status_id
        if fields:
            self.request("PUT", f"/issues/{_id(key)}.json", json={"issue": fields})
        issue = self.get(key)
        if status_id is not None and change.status is not None and not self._has_status(issue, change.status):
            raise TrackerPermanent(self.name, f"Redmine kept issue #{key} in {issue.status!r}: the workflow does not "
                                   f"allow {status_name!r} for this user (status_map.{change.status})", kind="config")
        return issue

    def get(self, key: str) -> RemoteIssue:
        return self._issue(self.json("GET", f"/issues/{_id(key)}.json")["issue"])

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        marker.marker(item_id)  # refuses anything but an item id before it goes into a query
        params = {"status_id": "*", "description": f"~{item_id}", "sort": "id", "limit": PAGE_SIZE}
        found = self.json("GET", f"/projects/{project}/issues.json", params=params)["issues"]
        matches = [self._issue(raw) for raw in found]
        return next((issue for issue in matches if issue.item_id == item_id), None)

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        listed: list[RemoteIssue] = []
        exhausted = False
        listed_at: datetime | None = None
        for page in range(MAX_PAGES):
            params = {"status_id": "*", "updated_on": f">={iso_seconds(cursor.query_since)}",
                      "sort": "updated_on,id", "limit": PAGE_SIZE, "offset": page * PAGE_SIZE}
            what = f"GET /projects/{project}/issues.json"
            response = self.request("GET", f"/projects/{project}/issues.json", params=params)
            body = self.decode(response, what)
            if page == 0:  # the earliest answer of the listing: Redmine's clock, which stamps updated_on
                listed_at = answered_at(response)
            listed.extend(self._issue(raw) for raw in body["issues"])
            if len(body["issues"]) < PAGE_SIZE or (page + 1) * PAGE_SIZE >= int(body.get("total_count", 0)):
                exhausted = True
                break
            if sum(cursor.is_new(i) for i in listed) > limit:
                break
        return page_of_changes(cursor, listed, exhausted=exhausted, limit=limit, listed_at=listed_at)

    def add_comment(self, key: str, body: str) -> None:
        self.request("PUT", f"/issues/{_id(key)}.json", json={"issue": {"notes": body}})

    def key_for_url(self, url: str) -> str:
        found = re.fullmatch(re.escape(self.config.url) + r"/issues/([0-9]+)/?", url.strip())
        if found is None:
            raise ValueError(f"not an issue URL of {self.config.url}: expected {self.config.url}/issues/<number>")
        return found.group(1)

    # -- translation ------------------------------------------------------------------------

    def _issue(self, raw: dict[str, Any]) -> RemoteIssue:
        parsed = marker.parse(raw.get("description"), labels_in_footer=True)
        status = raw["status"]
        closed = status.get("is_closed")
        if closed is None:  # Redmine < 5.1 leaves it out of some answers
            closed = self._statuses_by_name().get(status["name"].casefold(), (0, "", False))[2]
        assigned = raw.get("assigned_to")
        assignee = self._login_of(assigned) if assigned else None
        return RemoteIssue(
            key=str(raw["id"]), url=f"{self.config.url}/issues/{raw['id']}", title=raw["subject"],
            description=parsed.body, status=status["name"], closed=bool(closed),
            created_at=parse_utc(raw["created_on"]), updated_at=parse_utc(raw["updated_on"]),
            item_id=parsed.item_id, priority=(raw.get("priority") or {}).get("name"), labels=parsed.labels,
            assignee=assignee,
        )

    def _has_status(self, issue: RemoteIssue, backlog_status: str) -> bool:
        return issue.status.casefold() == self.config.statuses[Status(backlog_status)].casefold()

    def _status_for(self, backlog_status: str) -> tuple[int, str]:
        wanted = self.config.statuses[Status(backlog_status)]
        statuses = self._statuses_by_name()
        found = statuses.get(wanted.casefold())
        if found is None:
            names = ", ".join(name for _, name, _ in statuses.values())
            raise TrackerPermanent(self.name, f"status_map.{backlog_status}: no Redmine status named {wanted!r} "
                                   f"(Redmine has: {names})", kind="config")
        status_id, name, closed = found
        if closed != (backlog_status in CLOSED_STATUSES):
            state = "closed" if closed else "open"
            raise TrackerPermanent(self.name, f"status_map.{backlog_status}: Redmine status {name!r} is {state}; "
                                   f"map {backlog_status} to {'an open' if closed else 'a closed'} status",
                                   kind="config")
        return status_id, name

    def _priority_field(self, priority: str | None) -> dict[str, Any]:
        name = self.config.priority_map.get(Priority(priority)) if priority is not None else None
        if name is None:
            return {}
        return {"priority_id": self._lookup(self._priority_ids(), name, f"priority_map.{priority}", "priority")}

    def _assignee_field(self, owner: str | None, *, unassign: bool) -> dict[str, Any]:
        user = self.config.assignees.get(owner) if owner is not None else None
        if user is None:
            return {"assigned_to_id": ""} if unassign else {}
        return {"assigned_to_id": self._user_id(user, owner or "")}

    def _login_of(self, assigned: dict[str, Any]) -> str:
        """The login of an assignee (Redmine answers with id and display name): the configured
        logins are looked up once, so a fresh adapter reads back what another one assigned."""
        user_id = int(assigned["id"])
        if user_id not in self._logins and not self._resolved_logins:
            self._resolved_logins = True
            for owner, login in self.config.assignees.items():
                try:
                    self._user_id(login, owner)
                except TrackerPermanent:
                    continue  # no admin token or no such user: show the display name
        return self._logins.get(user_id) or str(assigned.get("name") or user_id)

    def _user_id(self, login: str, owner: str) -> int:
        if login.isdigit():
            self._logins[int(login)] = login
            return int(login)
        if login not in self._user_ids:
            try:
                users = self.json("GET", "/users.json", params={"name": login, "status": 1})["users"]
            except TrackerPermanent as exc:
                if exc.status == 403:
                    raise TrackerPermanent(self.name, f"assignees.{owner}: looking up the Redmine login {login!r} "
                                           f"needs an admin token; write the numeric user id instead",
                                           kind="config", status=403) from None
                raise
            match = next((u for u in users if u.get("login") == login), None)
            if match is None:
                raise TrackerPermanent(self.name, f"assignees.{owner}: no active Redmine user with login {login!r}",
                                       kind="config")
            self._user_ids[login] = int(match["id"])
            self._logins[int(match["id"])] = login
        return self._user_ids[login]

    def _lookup(self, table: dict[str, int], name: str, key: str, what: str) -> int:
        found = table.get(name.casefold())
        if found is None:
            raise TrackerPermanent(self.name, f"{key}: no Redmine {what} named {name!r} (Redmine has: "
                                   f"{', '.join(sorted(table))})", kind="config")
        return found

    def _statuses_by_name(self) -> dict[str, tuple[int, str, bool]]:
        if self._statuses is None:
            rows = self.json("GET", "/issue_statuses.json")["issue_statuses"]
            self._statuses = {r["name"].casefold(): (int(r["id"]), r["name"], bool(r.get("is_closed"))) for r in rows}
        return self._statuses

    def _priority_ids(self) -> dict[str, int]:
        if self._priorities is None:
            rows = self.json("GET", "/enumerations/issue_priorities.json")["issue_priorities"]
            self._priorities = {r["name"].casefold(): int(r["id"]) for r in rows}
        return self._priorities

    def _tracker_ids(self) -> dict[str, int]:
        if self._trackers is None:
            rows = self.json("GET", "/trackers.json")["trackers"]
            self._trackers = {r["name"].casefold(): int(r["id"]) for r in rows}
        return self._trackers


def answered_at(response: httpx.Response) -> datetime | None:
    """The server's ``Date`` header (whole seconds, rounded down), or None when absent or odd."""
    try:
        at = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo is not None else None


def _id(key: str) -> str:
    if not key.isdigit():
        raise ValueError(f"not a Redmine issue key: {key!r}")
    return key
