"""Jira (REST API v2: the description stays a wiki-markup string on Cloud and Data Center alike).

- Auth: a token of the form ``email:api_token`` is Jira Cloud's basic auth; anything else is a
  Data Center personal access token (``Authorization: Bearer``).
- Cloud (``*.atlassian.net``) searches with ``/rest/api/2/search/jql`` (token pages; the old
  ``/search`` is gone there), Data Center with ``/rest/api/2/search`` (``startAt`` pages).
  Assignees are account ids on Cloud and usernames on Data Center.
- A status is reached through a transition whose target status has the mapped name; when the
  workflow offers none from the current status, that is a permanent ``config`` error listing
  the transitions it does offer.
- JQL dates are minutes in the *token user's* time zone (``GET /myself``), so the cursor is
  converted into that zone and rounded down; the exact filter is done here.
- A create in a project that does not exist answers 400 ``errors.project``: reported as
  ``not_found``, like the other trackers' 404.

Marker search: JQL ``text ~ "\\"<item id>\\""`` (a phrase); Cloud's index lags, so
``created_since`` also lists ``created >= …`` issues.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from services.router.clock import Clock
from services.router.domain.enums import Priority, Status
from services.router.trackers import marker
from services.router.trackers.config import TrackerConfig
from services.router.trackers.errors import TrackerError, TrackerPermanent
from services.router.trackers.http import DEFAULT_TIMEOUT_SECONDS, MAX_PAGES, HttpAdapter
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

API = "/rest/api/2"
PAGE_SIZE = 100
FIELDS = "summary,description,status,created,updated,priority,labels,assignee"
KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[0-9]+$")
DEFAULT_ISSUE_TYPE = "Task"


def _auth_header(token: str) -> dict[str, str]:
    if ":" in token:  # email:api_token (Cloud)
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    return {"Authorization": f"Bearer {token}"}


class JiraAdapter(HttpAdapter):
    kind = "jira"

    def __init__(self, name: str, config: TrackerConfig, *, transport: httpx.BaseTransport | None = None,
                 environ: Mapping[str, str] | None = None, clock: Clock | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(name, config, base_url=config.url + API, header_for=_auth_header, transport=transport,
                         environ=environ, clock=clock, timeout_seconds=timeout_seconds)
        self.cloud = (urlsplit(config.url).hostname or "").endswith(".atlassian.net")
        self._zone: ZoneInfo | None = None

    # -- the interface ----------------------------------------------------------------------

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        fields: dict[str, Any] = {
            "project": {"key": project}, "summary": draft.title,
            "description": marker.compose(draft.description, draft.item_id),
            "issuetype": {"name": self.config.issue_type or DEFAULT_ISSUE_TYPE},
            "labels": list(merge_labels(self.config.labels, draft.labels)),
        }
        fields.update(self._priority_field(draft.priority))
        fields.update(self._assignee_field(draft.owner, unassign=False))
        created = self.json("POST", "/issue", json={"fields": fields})
        issue = self.get(str(created["key"]))
        if not self._has_status(issue, draft.status):
            return self.update(issue.key, IssueUpdate(item_id=draft.item_id, status=draft.status))
        return issue

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        _check(key)
        fields: dict[str, Any] = {}
        edits: dict[str, Any] = {}
        if change.title is not None:
            fields["summary"] = change.title
        if change.description is not None:
            fields["description"] = marker.compose(change.description, change.item_id)
        fields.update(self._priority_field(change.priority))
        if change.owner is not None:
            fields.update(self._assignee_field(change.owner, unassign=True))
        if change.labels:
            edits["labels"] = [{"add": label} for label in change.labels]
        if fields or edits:
            self.request("PUT", f"/issue/{key}", json={"fields": fields, "update": edits})
        issue = self.get(key)
        if change.status is not None and not self._has_status(issue, change.status):
            self._transition(issue, change.status)
            issue = self.get(key)
        return issue

    def get(self, key: str) -> RemoteIssue:
        _check(key)
        return self._issue(self.json("GET", f"/issue/{key}", params={"fields": FIELDS}))

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        marker.marker(item_id)
        jql = f'project = "{project}" AND text ~ "\\"{item_id}\\"" ORDER BY created ASC'
        hits, _ = self._search(jql, enough=lambda found: any(i.item_id == item_id for i in found))
        match = next((i for i in hits if i.item_id == item_id), None)
        if match is not None or created_since is None:
            return match
        jql = f'project = "{project}" AND created >= "{self._jql_time(created_since)}" ORDER BY created ASC'
        listed, _ = self._search(jql, enough=lambda found: any(i.item_id == item_id for i in found))
        return next((i for i in listed if i.item_id == item_id), None)

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        jql = (f'project = "{project}" AND updated >= "{self._jql_time(cursor.query_since)}" '
               f"ORDER BY updated ASC, key ASC")
        listed, exhausted = self._search(jql, enough=lambda found: sum(map(cursor.is_new, found)) > limit)
        return page_of_changes(cursor, listed, exhausted=exhausted, limit=limit)

    def add_comment(self, key: str, body: str) -> None:
        _check(key)
        self.request("POST", f"/issue/{key}/comment", json={"body": body})

    def key_for_url(self, url: str) -> str:
        found = re.fullmatch(re.escape(self.config.url) + r"/browse/([A-Z][A-Z0-9_]*-[0-9]+)/?", url.strip())
        if found is None:
            raise ValueError(f"not a Jira issue URL: expected {self.config.url}/browse/KEY-<number>")
        return found.group(1)

    # -- translation ------------------------------------------------------------------------

    def classify(self, response: httpx.Response, what: str) -> TrackerError:
        error = super().classify(response, what)
        if response.status_code == 400 and isinstance(error, TrackerPermanent):
            try:
                errors = response.json().get("errors") or {}
            except (ValueError, AttributeError):
                errors = {}
            if "project" in errors:
                return TrackerPermanent(self.name, error.reason, kind="not_found", status=400)
        return error

    def _search(self, jql: str, *, enough: Any) -> tuple[list[RemoteIssue], bool]:
        issues: list[RemoteIssue] = []
        token: str | None = None
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"jql": jql, "fields": FIELDS, "maxResults": PAGE_SIZE}
            if self.cloud:
                if token is not None:
                    params["nextPageToken"] = token
                body = self.json("GET", "/search/jql", params=params)
                issues.extend(self._issue(raw) for raw in body.get("issues", []))
                token = body.get("nextPageToken")
                last = body.get("isLast", token is None) or token is None
            else:
                params["startAt"] = page * PAGE_SIZE
                body = self.json("GET", "/search", params=params)
                issues.extend(self._issue(raw) for raw in body.get("issues", []))
                last = (page + 1) * PAGE_SIZE >= int(body.get("total", 0)) or not body.get("issues")
            if last:
                return issues, True
            if enough(issues):
                return issues, False
        return issues, False

    def _transition(self, issue: RemoteIssue, backlog_status: str) -> None:
        """Through the workflow's transition to the mapped status; from a closed issue whose
        workflow only reopens (Done → To Do), by way of the ``open`` status first."""
        wanted = self.config.statuses[Status(backlog_status)]
        offered = self.json("GET", f"/issue/{issue.key}/transitions")["transitions"]
        chosen = _transition_to(offered, wanted)
        reopen = self.config.statuses[Status.OPEN]
        current = repr(issue.status)
        if chosen is None and issue.closed and backlog_status != Status.OPEN:
            via = _transition_to(offered, reopen)
            if via is not None:  # an active status was asked for: reopened is nearer to it than closed
                self.request("POST", f"/issue/{issue.key}/transitions", json={"transition": {"id": via["id"]}})
                offered = self.json("GET", f"/issue/{issue.key}/transitions")["transitions"]
                chosen = _transition_to(offered, wanted)
                current = f"{via['to']['name']!r} (reopened from {issue.status!r})"
        if chosen is None:
            available = ", ".join(f"{t['name']} → {t['to']['name']}" for t in offered) or "none"
            raise TrackerPermanent(self.name, f"status_map.{backlog_status}: no transition from {current} to "
                                   f"{wanted!r} for {issue.key} (available: {available})", kind="config")
        self.request("POST", f"/issue/{issue.key}/transitions", json={"transition": {"id": chosen["id"]}})

    def _issue(self, raw: dict[str, Any]) -> RemoteIssue:
        fields = raw["fields"]
        parsed = marker.parse(fields.get("description"))
        status = fields["status"]
        assignee = fields.get("assignee") or {}
        return RemoteIssue(
            key=raw["key"], url=f"{self.config.url}/browse/{raw['key']}", title=fields["summary"],
            description=parsed.body, status=status["name"],
            closed=(status.get("statusCategory") or {}).get("key") == "done",
            created_at=_parse_jira_time(fields["created"]), updated_at=_parse_jira_time(fields["updated"]),
            item_id=parsed.item_id, priority=(fields.get("priority") or {}).get("name"),
            labels=tuple(fields.get("labels") or ()),
            assignee=assignee.get("accountId" if self.cloud else "name") if assignee else None,
        )

    def _has_status(self, issue: RemoteIssue, backlog_status: str) -> bool:
        return issue.status.casefold() == self.config.statuses[Status(backlog_status)].casefold()

    def _priority_field(self, priority: str | None) -> dict[str, Any]:
        name = self.config.priority_map.get(Priority(priority)) if priority is not None else None
        return {"priority": {"name": name}} if name is not None else {}

    def _assignee_field(self, owner: str | None, *, unassign: bool) -> dict[str, Any]:
        user = self.config.assignees.get(owner) if owner is not None else None
        if user is None:
            return {"assignee": None} if unassign else {}
        return {"assignee": {"accountId": user} if self.cloud else {"name": user}}

    def _jql_time(self, at: datetime) -> str:
        """``yyyy/MM/dd HH:mm`` in the token user's zone, rounded down to the minute."""
        if self._zone is None:
            name = str(self.json("GET", "/myself").get("timeZone") or "UTC")
            try:
                self._zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise TrackerPermanent(self.name, f"Jira reports the unknown time zone {name!r} for the token's user",
                                       kind="config") from None
        return at.astimezone(self._zone).strftime("%Y/%m/%d %H:%M")


def _transition_to(offered: list[dict[str, Any]], status: str) -> dict[str, Any] | None:
    return next((t for t in offered if t["to"]["name"].casefold() == status.casefold()), None)


def _parse_jira_time(text: str) -> datetime:
    """Jira's ``2026-11-26T12:00:00.000+0000`` (offset without a colon) as UTC."""
    from datetime import UTC

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def _check(key: str) -> None:
    if not KEY.match(key):
        raise ValueError(f"not a Jira issue key (KEY-NUMBER): {key!r}")
