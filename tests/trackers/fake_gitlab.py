"""A stateful in-process GitLab issues API (REST v4), as documented:

- the project id is its URL-encoded path (``/projects/group%2Fplatform/issues``); an
  unencoded path is another route, hence 404;
- ``POST /projects/:id/issues`` (201; 400 ``title is missing``; labels a comma-separated
  string; ``assignee_ids`` must name users), ``GET``/``PUT /projects/:id/issues/:iid``
  (``state_event`` close/reopen, ``labels``, ``add_labels``, ``remove_labels``,
  ``assignee_ids``), ``GET /projects/:id/issues`` (all states unless ``state``;
  ``updated_after`` = on or after; ``search`` with ``in=title,description``; ``order_by``
  created_at/updated_at, ``sort``; ``page``/``per_page`` with ``X-Next-Page``),
  ``POST …/issues/:iid/notes`` (201), ``GET /users?username=``;
- 401 ``401 Unauthorized`` without ``PRIVATE-TOKEN``, 404 ``404 Project Not Found`` /
  ``404 Not found``, and any fault queued on ``faults`` (429 with ``Retry-After``, 5xx…).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx

from services.router.clock import parse_utc
from tests.trackers.fake_support import Faults, TickingClock, read_json, respond

URL = "https://gitlab.example.test"
TOKEN = "glpat-fake-gitlab-token-0123"


def ms(at: Any) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeGitLab:
    def __init__(self, projects: tuple[str, ...] = ("acme/platform",), users: tuple[str, ...] = ("alice",)):
        self.clock = TickingClock()
        self.faults = Faults()
        self.projects: dict[str, dict[int, dict[str, Any]]] = {p: {} for p in projects}
        self.users = {name: 100 + i for i, name in enumerate(users)}
        self.notes: dict[str, list[str]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- what people do on GitLab -----------------------------------------------------------------

    def close(self, key: str) -> None:
        self._touch(self._by_key(key), state="closed")

    def reopen(self, key: str) -> None:
        self._touch(self._by_key(key), state="opened")

    def delete(self, key: str) -> None:
        project, iid = key.split("#")
        del self.projects[project][int(iid)]

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        faulted = self.faults.take()
        if faulted is not None:
            return faulted
        if request.headers.get("private-token") != TOKEN:
            return respond(401, {"message": "401 Unauthorized"})
        raw_path = request.url.raw_path.decode().split("?")[0]
        method = request.method
        if raw_path == "/api/v4/users" and method == "GET":
            name = request.url.params.get("username", "")
            return respond(200, [{"id": self.users[name], "username": name}] if name in self.users else [])
        found = re.fullmatch(r"/api/v4/projects/([^/]+)/issues(?:/([0-9]+))?(/notes)?", raw_path)
        if found is None:
            return respond(404, {"error": "404 Not Found"})
        project = unquote(found.group(1))
        if project not in self.projects:
            return respond(404, {"message": "404 Project Not Found"})
        iid, notes = found.group(2), found.group(3)
        if iid is None:
            return self._create(project, request) if method == "POST" else self._list(project, request)
        issue = self.projects[project].get(int(iid))
        if issue is None:
            return respond(404, {"message": "404 Not found"})
        if notes and method == "POST":
            body = (read_json(request) or {}).get("body")
            if not isinstance(body, str) or not body.strip():
                return respond(400, {"message": {"note": ["can't be blank"]}})
            self.notes.setdefault(f"{project}#{iid}", []).append(body)
            self._touch(issue)
            return respond(201, {"id": len(self.notes), "body": body})
        if method == "PUT":
            return self._update(issue, read_json(request) or {})
        return respond(200, self._public(issue))

    def _create(self, project: str, request: httpx.Request) -> httpx.Response:
        data = read_json(request) or {}
        if not isinstance(data.get("title"), str) or not data["title"].strip():
            return respond(400, {"error": "title is missing"})
        bad = self._bad_assignees(data)
        if bad is not None:
            return bad
        issues = self.projects[project]
        iid = max(issues, default=0) + 1
        now = self.clock.tick()
        issues[iid] = {"iid": iid, "project": project, "title": data["title"], "description": data.get("description"),
                       "state": "opened", "labels": _labels(data.get("labels")),
                       "assignee_ids": list(data.get("assignee_ids") or []), "created_at": now, "updated_at": now}
        return respond(201, self._public(issues[iid]))

    def _update(self, issue: dict[str, Any], data: dict[str, Any]) -> httpx.Response:
        bad = self._bad_assignees(data)
        if bad is not None:
            return bad
        if "title" in data and not str(data["title"]).strip():
            return respond(400, {"message": {"title": ["can't be blank"]}})
        changes: dict[str, Any] = {k: data[k] for k in ("title", "description", "assignee_ids") if k in data}
        event = data.get("state_event")
        if event is not None:
            if event not in ("close", "reopen"):
                return respond(400, {"error": "state_event does not have a valid value"})
            changes["state"] = "closed" if event == "close" else "opened"
        labels = _labels(data["labels"]) if "labels" in data else list(issue["labels"])
        labels = [x for x in labels if x not in _labels(data.get("remove_labels"))]
        labels += [x for x in _labels(data.get("add_labels")) if x not in labels]
        changes["labels"] = labels
        self._touch(issue, **changes)
        return respond(200, self._public(issue))

    def _list(self, project: str, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        issues = list(self.projects[project].values())
        if q.get("state") in ("opened", "closed"):
            issues = [i for i in issues if i["state"] == q["state"]]
        if "updated_after" in q:
            after = parse_utc(q["updated_after"])
            issues = [i for i in issues if i["updated_at"] >= after]
        if "search" in q:
            where = (q.get("in") or "title,description").split(",")
            term = q["search"].lower()
            issues = [i for i in issues if any(term in (i.get(w) or "").lower() for w in where)]
        field = q.get("order_by", "created_at")
        issues.sort(key=lambda i: (i[field], i["iid"]), reverse=q.get("sort", "desc") == "desc")
        per_page, page = min(int(q.get("per_page", 20)), 100), int(q.get("page", 1))
        chunk = issues[(page - 1) * per_page: page * per_page]
        more = page * per_page < len(issues)
        headers = {"x-page": str(page), "x-per-page": str(per_page), "x-total": str(len(issues)),
                   "x-next-page": str(page + 1) if more else ""}
        return respond(200, [self._public(i) for i in chunk], headers)

    # -- state ----------------------------------------------------------------------------------

    def _bad_assignees(self, data: dict[str, Any]) -> httpx.Response | None:
        known = set(self.users.values())
        if any(a not in known for a in data.get("assignee_ids") or []):
            return respond(422, {"message": {"assignee_ids": ["are not valid users"]}})
        return None

    def _touch(self, issue: dict[str, Any], **changes: Any) -> None:
        issue.update(changes)
        issue["updated_at"] = self.clock.tick()

    def _by_key(self, key: str) -> dict[str, Any]:
        project, iid = key.split("#")
        return self.projects[project][int(iid)]

    def _public(self, issue: dict[str, Any]) -> dict[str, Any]:
        names = {v: k for k, v in self.users.items()}
        assignees = [{"id": a, "username": names[a]} for a in issue["assignee_ids"]]
        return {
            "id": 5000 + issue["iid"], "iid": issue["iid"], "title": issue["title"],
            "description": issue["description"], "state": issue["state"], "labels": list(issue["labels"]),
            "assignees": assignees, "assignee": assignees[0] if assignees else None,
            "web_url": f"{URL}/{issue['project']}/-/issues/{issue['iid']}",
            "created_at": ms(issue["created_at"]), "updated_at": ms(issue["updated_at"]),
        }


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [x.strip() for x in str(value).split(",") if x.strip()]
