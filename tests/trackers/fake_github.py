"""A stateful in-process GitHub Issues API (REST 2022-11-28), as documented:

- ``POST /repos/{o}/{r}/issues`` (201; 422 ``Validation Failed`` for a missing title or an
  assignee who is not a collaborator), ``GET``/``PATCH /repos/{o}/{r}/issues/{n}`` (labels and
  assignees replaced as sent; ``state`` open/closed with ``state_reason``),
  ``GET /repos/{o}/{r}/issues`` (``state`` defaults to *open*; ``since`` = updated at or after;
  ``sort`` created/updated, ``direction``; ``per_page``/``page`` with a ``Link: rel="next"``
  header; pull requests are listed too, with a ``pull_request`` key),
  ``POST …/issues/{n}/comments`` (201), ``GET /search/issues?q=`` (phrase, ``in:body``,
  ``repo:``, ``is:issue``; the index lags creation by ``search_lag_seconds``);
- 401 ``Bad credentials`` without the token, 404 ``Not Found`` for an unknown repo or issue,
  and the rate-limit answers GitHub documents (:meth:`FakeGitHub.secondary_rate_limit`,
  :meth:`FakeGitHub.primary_rate_limit`), plus any fault queued on ``faults``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from services.router.clock import parse_utc
from tests.trackers.fake_support import Faults, TickingClock, read_json, respond, z

API = "https://api.github.com"
TOKEN = "ghp_fake_github_token_0123456789"
DOCS = "https://docs.github.com/rest"


class FakeGitHub:
    def __init__(self, repos: tuple[str, ...] = ("acme/platform",), collaborators: tuple[str, ...] = ("alice",)):
        self.clock = TickingClock()
        self.faults = Faults()
        self.repos: dict[str, dict[int, dict[str, Any]]] = {repo: {} for repo in repos}
        self.comments: dict[str, list[str]] = {}
        self.collaborators = set(collaborators)
        self.search_lag_seconds = 0.0
        self._number = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- what people do on github.com ---------------------------------------------------------

    def close(self, key: str, reason: str = "completed") -> None:
        self._touch(self._by_key(key), state="closed", state_reason=reason)

    def reopen(self, key: str) -> None:
        self._touch(self._by_key(key), state="open", state_reason="reopened")

    def add_pull_request(self, repo: str, body: str) -> None:
        issue = self._new(repo, {"title": "a pull request", "body": body})
        issue["pull_request"] = {"url": f"{API}/repos/{repo}/pulls/{issue['number']}"}

    def delete(self, key: str) -> None:
        repo, number = key.split("#")
        del self.repos[repo][int(number)]

    def secondary_rate_limit(self, retry_after: int | None = None) -> None:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self.faults.next(403, headers=headers, body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api"})

    def primary_rate_limit(self, reset_epoch: int) -> None:
        self.faults.next(403, headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                       "x-ratelimit-reset": str(reset_epoch)},
                         body={"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS})

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        faulted = self.faults.take()
        if faulted is not None:
            return faulted
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return respond(401, {"message": "Bad credentials", "documentation_url": DOCS})
        path, method = request.url.path, request.method
        if path == "/search/issues" and method == "GET":
            return self._search(request)
        found = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues(?:/([0-9]+))?(/comments)?", path)
        if found is None or found.group(1) not in self.repos:
            return respond(404, {"message": "Not Found", "documentation_url": DOCS})
        repo, number, comments = found.group(1), found.group(2), found.group(3)
        if number is None:
            return self._create(repo, request) if method == "POST" else self._list(repo, request)
        issue = self.repos[repo].get(int(number))
        if issue is None:
            return respond(404, {"message": "Not Found", "documentation_url": DOCS})
        if comments and method == "POST":
            body = (read_json(request) or {}).get("body")
            if not isinstance(body, str) or not body:
                return self._invalid("IssueComment", "body", "missing_field")
            self.comments.setdefault(f"{repo}#{number}", []).append(body)
            self._touch(issue)
            return respond(201, {"id": len(self.comments), "body": body})
        if method == "PATCH":
            return self._patch(issue, read_json(request) or {})
        return respond(200, self._public(issue))

    def _create(self, repo: str, request: httpx.Request) -> httpx.Response:
        data = read_json(request) or {}
        if not isinstance(data.get("title"), str) or not data["title"].strip():
            return self._invalid("Issue", "title", "missing_field")
        for login in data.get("assignees") or []:
            if login not in self.collaborators:
                return self._invalid("Issue", "assignees", "invalid", login)
        return respond(201, self._public(self._new(repo, data)))

    def _patch(self, issue: dict[str, Any], data: dict[str, Any]) -> httpx.Response:
        if "state" in data and data["state"] not in ("open", "closed"):
            return self._invalid("Issue", "state", "invalid", data["state"])
        for login in data.get("assignees") or []:
            if login not in self.collaborators:
                return self._invalid("Issue", "assignees", "invalid", login)
        if "title" in data and not str(data["title"]).strip():
            return self._invalid("Issue", "title", "missing_field")
        changes = {k: data[k] for k in ("title", "body", "state", "labels", "assignees") if k in data}
        if data.get("state") == "closed":
            changes["state_reason"] = data.get("state_reason") or "completed"
        elif data.get("state") == "open" and issue["state"] == "closed":
            changes["state_reason"] = "reopened"
        self._touch(issue, **changes)
        return respond(200, self._public(issue))

    def _list(self, repo: str, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        state = q.get("state", "open")
        issues = [i for i in self.repos[repo].values() if state == "all" or i["state"] == state]
        if "since" in q:
            since = parse_utc(q["since"])
            issues = [i for i in issues if i["updated_at"] >= since]
        field = "updated_at" if q.get("sort") == "updated" else "created_at"
        issues.sort(key=lambda i: (i[field], i["number"]), reverse=q.get("direction", "desc") == "desc")
        per_page, page = min(int(q.get("per_page", 30)), 100), int(q.get("page", 1))
        chunk = issues[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(issues):
            params = dict(q.items())
            params["page"] = str(page + 1)
            headers["link"] = f'<{API}/repos/{repo}/issues?{urlencode(params)}>; rel="next"'
        return respond(200, [self._public(i) for i in chunk], headers)

    def _search(self, request: httpx.Request) -> httpx.Response:
        query = request.url.params.get("q", "")
        phrase = re.search(r'"([^"]+)"', query)
        repo = re.search(r"repo:(\S+)", query)
        if phrase is None or repo is None or "in:body" not in query or "is:issue" not in query:
            return self._invalid("Search", "q", "invalid", query)
        indexed_before = self.clock.now() - timedelta(seconds=self.search_lag_seconds)
        hits = [i for i in self.repos.get(repo.group(1), {}).values()
                if "pull_request" not in i and phrase.group(1).lower() in (i["body"] or "").lower()
                and (self.search_lag_seconds == 0 or i["created_at"] <= indexed_before)]
        hits.sort(key=lambda i: i["created_at"], reverse=request.url.params.get("order", "desc") == "desc")
        return respond(200, {"total_count": len(hits), "incomplete_results": False,
                             "items": [self._public(i) for i in hits]})

    # -- state ----------------------------------------------------------------------------------

    def _new(self, repo: str, data: dict[str, Any]) -> dict[str, Any]:
        self._number += 1
        now = self.clock.tick()
        issue = {"number": self._number, "repo": repo, "title": data["title"], "body": data.get("body"),
                 "state": "open", "state_reason": None, "labels": list(data.get("labels") or []),
                 "assignees": list(data.get("assignees") or []), "created_at": now, "updated_at": now}
        self.repos[repo][self._number] = issue
        return issue

    def _touch(self, issue: dict[str, Any], **changes: Any) -> None:
        issue.update(changes)
        issue["updated_at"] = self.clock.tick()

    def _by_key(self, key: str) -> dict[str, Any]:
        repo, number = key.split("#")
        return self.repos[repo][int(number)]

    def _public(self, issue: dict[str, Any]) -> dict[str, Any]:
        repo = issue["repo"]
        out = {
            "id": 1000 + issue["number"], "number": issue["number"], "title": issue["title"], "body": issue["body"],
            "state": issue["state"], "state_reason": issue["state_reason"],
            "url": f"{API}/repos/{repo}/issues/{issue['number']}",
            "repository_url": f"{API}/repos/{repo}",
            "html_url": f"https://github.com/{repo}/issues/{issue['number']}",
            "labels": [{"name": name, "color": "ededed"} for name in issue["labels"]],
            "assignee": {"login": issue["assignees"][0]} if issue["assignees"] else None,
            "assignees": [{"login": login} for login in issue["assignees"]],
            "created_at": z(issue["created_at"]), "updated_at": z(issue["updated_at"]),
            "closed_at": z(issue["updated_at"]) if issue["state"] == "closed" else None,
        }
        if "pull_request" in issue:
            out["pull_request"] = issue["pull_request"]
        return out

    @staticmethod
    def _invalid(resource: str, field: str, code: str, value: Any = None) -> httpx.Response:
        error = {"resource": resource, "field": field, "code": code}
        if value is not None:
            error["value"] = value
        return respond(422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS})
