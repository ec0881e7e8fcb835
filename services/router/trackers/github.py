"""GitHub Issues (REST API 2022-11-28; github.com or Enterprise ``https://HOST/api/v3``).

Issues are open or closed (``state_reason`` completed / not_planned follows done / canceled);
priorities are labels (``priority_map`` values are label names, swapped on a priority change);
assignees are logins. The issues list also returns pull requests: they are skipped.

Marker search: ``GET /search/issues?q="<item id>" in:body repo:OWNER/NAME is:issue``. GitHub's
search index lags creation by seconds to minutes, so ``find_by_marker(created_since=…)`` also
walks the (consistent) issue list since that time.

Rate limits (GitHub's documented rules): 429, or 403 with ``retry-after``, with
``x-ratelimit-remaining: 0`` (wait until ``x-ratelimit-reset``) or a "secondary rate limit"
message without either (wait a minute); any other 403 is a permission problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.router.clock import Clock, parse_utc
from services.router.domain.enums import Priority, Status
from services.router.trackers import marker
from services.router.trackers.config import TrackerConfig
from services.router.trackers.errors import TrackerError, TrackerPermanent
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
API_VERSION = "2022-11-28"
KEY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+)#([0-9]+)$")


class GitHubAdapter(HttpAdapter):
    kind = "github"

    def __init__(self, name: str, config: TrackerConfig, *, transport: httpx.BaseTransport | None = None,
                 environ: Mapping[str, str] | None = None, clock: Clock | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(name, config, base_url=config.url, header_for=lambda t: {"Authorization": f"Bearer {t}"},
                         transport=transport, environ=environ, clock=clock, timeout_seconds=timeout_seconds,
                         headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION})

    # -- the interface ----------------------------------------------------------------------

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        labels = list(merge_labels(self.config.labels, draft.labels, self._priority_labels(draft.priority)))
        body: dict[str, Any] = {"title": draft.title, "body": marker.compose(draft.description, draft.item_id),
                                "labels": labels}
        login = self._login(draft.owner)
        if login is not None:
            body["assignees"] = [login]
        issue = self._issue(self.json("POST", f"/repos/{project}/issues", json=body))
        if self._state(draft.status) == "closed":
            return self.update(issue.key, IssueUpdate(item_id=draft.item_id, status=draft.status))
        return issue

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        repo, number = _split(key)
        body: dict[str, Any] = {}
        if change.title is not None:
            body["title"] = change.title
        if change.description is not None:
            body["body"] = marker.compose(change.description, change.item_id)
        if change.status is not None:
            body["state"] = self._state(change.status)
            if body["state"] == "closed":
                body["state_reason"] = "not_planned" if change.status == Status.CANCELED else "completed"
        if change.priority is not None or change.labels is not None:
            current = self.get(key)
            keep = [label for label in current.labels
                    if change.priority is None or label not in self.config.priority_map.values()]
            body["labels"] = list(merge_labels(keep, change.labels or (), self._priority_labels(change.priority)))
        if change.owner is not None:
            login = self._login(change.owner)
            body["assignees"] = [login] if login is not None else []
        if not body:
            return self.get(key)
        return self._issue(self.json("PATCH", f"/repos/{repo}/issues/{number}", json=body))

    def get(self, key: str) -> RemoteIssue:
        repo, number = _split(key)
        raw = self.json("GET", f"/repos/{repo}/issues/{number}")
        if "pull_request" in raw:
            raise TrackerPermanent(self.name, f"{key} is a pull request, not an issue", kind="not_found")
        return self._issue(raw)

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        marker.marker(item_id)
        query = f'"{item_id}" in:body repo:{project} is:issue'
        found = self.json("GET", "/search/issues", params={"q": query, "sort": "created", "order": "asc",
                                                            "per_page": PAGE_SIZE})
        match = _oldest(hit for hit in map(self._issue, found.get("items", [])) if hit.item_id == item_id)
        if match is not None or created_since is None:
            return match
        since = created_since.replace(microsecond=0)
        params = {"state": "all", "since": iso_seconds(since), "sort": "created", "direction": "asc",
                  "per_page": PAGE_SIZE}
        listed, _ = self._pages(f"/repos/{project}/issues", params,
                                enough=lambda issues: any(i.item_id == item_id for i in issues))
        return _oldest(i for i in listed if i.item_id == item_id and i.created_at >= since)

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        params = {"state": "all", "since": iso_seconds(cursor.query_since), "sort": "updated", "direction": "asc",
                  "per_page": PAGE_SIZE}
        listed, exhausted = self._pages(f"/repos/{project}/issues", params,
                                        enough=lambda issues: sum(map(cursor.is_new, issues)) > limit)
        return page_of_changes(cursor, listed, exhausted=exhausted, limit=limit)

    def add_comment(self, key: str, body: str) -> None:
        repo, number = _split(key)
        self.request("POST", f"/repos/{repo}/issues/{number}/comments", json={"body": body})

    def key_for_url(self, url: str) -> str:
        api = urlsplit(self.config.url)
        web_host = "github.com" if api.hostname == "api.github.com" else api.hostname
        parts = urlsplit(url.strip())
        found = re.fullmatch(r"/([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+)/issues/([0-9]+)/?", parts.path)
        if parts.hostname != web_host or found is None:
            raise ValueError(f"not a GitHub issue URL: expected https://{web_host}/OWNER/NAME/issues/<number>")
        return f"{found.group(1)}#{found.group(2)}"

    # -- translation ------------------------------------------------------------------------

    def classify(self, response: httpx.Response, what: str) -> TrackerError:
        if response.status_code == 403:
            headers = {k.lower(): v for k, v in response.headers.items()}
            text = self.error_text(response)
            if ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
                    or "rate limit" in text.lower()):
                return self.rate_limited(response, f"{what} → 403 rate limited: {text}")
        return super().classify(response, what)

    def _pages(self, path: str, params: dict[str, Any], *,
               enough: Callable[[list[RemoteIssue]], bool]) -> tuple[list[RemoteIssue], bool]:
        """Issues (never pull requests) across ``Link: rel="next"`` pages until ``enough`` or
        MAX_PAGES; and whether the list was read to its end."""
        issues: list[RemoteIssue] = []
        url: str = path
        query: dict[str, Any] | None = params
        for _ in range(MAX_PAGES):
            response = self.request("GET", url, params=query)
            issues.extend(self._issue(raw) for raw in self.decode(response, f"GET {path}") if "pull_request" not in raw)
            next_url = response.links.get("next", {}).get("url")
            if next_url is None:
                return issues, True
            if enough(issues):
                return issues, False
            url, query = next_url, None
        return issues, False

    def _issue(self, raw: dict[str, Any]) -> RemoteIssue:
        parsed = marker.parse(raw.get("body"))
        repo = _repo_of(raw)
        labels = tuple(label["name"] if isinstance(label, dict) else str(label) for label in raw.get("labels", []))
        priority = next((label for label in labels if label in self.config.priority_map.values()), None)
        assignees = raw.get("assignees") or ([raw["assignee"]] if raw.get("assignee") else [])
        return RemoteIssue(
            key=f"{repo}#{raw['number']}", url=raw["html_url"], title=raw["title"], description=parsed.body,
            status=raw["state"], closed=raw["state"] == "closed", created_at=parse_utc(raw["created_at"]),
            updated_at=parse_utc(raw["updated_at"]), item_id=parsed.item_id, priority=priority, labels=labels,
            assignee=assignees[0]["login"] if assignees else None,
        )

    def _state(self, backlog_status: str) -> str:
        return self.config.statuses[Status(backlog_status)]

    def _priority_labels(self, priority: str | None) -> tuple[str, ...]:
        label = self.config.priority_map.get(Priority(priority)) if priority is not None else None
        return (label,) if label is not None else ()

    def _login(self, owner: str | None) -> str | None:
        return self.config.assignees.get(owner) if owner is not None else None


def _split(key: str) -> tuple[str, str]:
    found = KEY.match(key)
    if found is None:
        raise ValueError(f"not a GitHub issue key (OWNER/NAME#NUMBER): {key!r}")
    return found.group(1), found.group(2)


def _repo_of(raw: dict[str, Any]) -> str:
    """``owner/name`` from the issue's ``repository_url`` (``…/repos/owner/name``)."""
    return "/".join(str(raw["repository_url"]).rstrip("/").split("/")[-2:])


def _oldest(issues: Iterable[RemoteIssue]) -> RemoteIssue | None:
    return min(issues, key=lambda i: (i.created_at, i.key), default=None)
