"""A stateful in-process Jira REST API v2 (Cloud by default, Data Center with ``cloud=False``):

- ``POST /issue`` (201 ``{id, key, self}``; 400 ``errors.project`` / ``errors.summary`` /
  ``errors.issuetype`` / ``errors.priority`` / ``errors.assignee``), ``GET /issue/{key}``,
  ``PUT /issue/{key}`` (204; ``fields`` set, ``update.labels`` ``[{"add": …}]``; ``status`` is
  not a field: 400), ``GET``/``POST /issue/{key}/transitions`` (only the transitions the
  workflow offers from the current status; 400 otherwise), ``POST /issue/{key}/comment`` (201),
  ``GET /myself`` (the token user's ``timeZone``);
- search: Cloud ``GET /search/jql`` (``nextPageToken`` pages, ``isLast``; the old ``/search``
  answers 410) or Data Center ``GET /search`` (``startAt``/``total``). JQL is parsed strictly:
  ``project = "K"``, ``text ~ "\\"phrase\\""``, ``updated >= "yyyy/MM/dd HH:mm"``,
  ``created >= …`` joined by AND, ``ORDER BY field ASC|DESC, …``; dates are minutes in the
  user's zone (Europe/Berlin here); the text index lags by ``search_lag_seconds``;
- 401 without the right credentials (Cloud: basic ``email:token``; DC: bearer), 404 for a
  missing issue, and any fault queued on ``faults``.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.trackers.fake_support import Faults, TickingClock, read_json, respond

CLOUD_URL = "https://acme.atlassian.net"
SERVER_URL = "https://jira.example.test"
EMAIL, SECRET = "sync@example.test", "fake-jira-api-token-0123"
CLOUD_TOKEN = f"{EMAIL}:{SECRET}"
SERVER_TOKEN = "fake-jira-pat-0123456789"
ZONE = ZoneInfo("Europe/Berlin")
ALICE_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Blocked": "indeterminate", "Done": "done",
            "Won't Do": "done"}
TRANSITIONS_OPEN = [("11", "To Do"), ("21", "In Progress"), ("31", "Blocked"), ("41", "Done"), ("51", "Won't Do")]
TRANSITION_NAMES = {"11": "Stop progress", "21": "Start progress", "31": "Block", "41": "Resolve", "51": "Won't do",
                    "61": "Reopen"}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
CLAUSE = re.compile(r'^(project|text|updated|created)\s*(=|~|>=)\s*"((?:[^"\\]|\\.)*)"$')


class FakeJira:
    def __init__(self, *, cloud: bool = True, projects: tuple[str, ...] = ("PLAT",)) -> None:
        self.cloud = cloud
        self.url = CLOUD_URL if cloud else SERVER_URL
        self.clock = TickingClock()
        self.faults = Faults()
        self.projects = set(projects)
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[str]] = {}
        self.users = {ALICE_ACCOUNT: "alice"} if cloud else {"alice": "alice"}
        self.search_lag_seconds = 0.0
        self._counter = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- what people do in Jira -------------------------------------------------------------------

    def set_status(self, key: str, status: str) -> None:
        self._touch(self.issues[key], status=status)

    def delete(self, key: str) -> None:
        del self.issues[key]

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        faulted = self.faults.take()
        if faulted is not None:
            return faulted
        if not self._authenticated(request):
            return respond(401, {"errorMessages": ["You are not authenticated. Authentication required to perform "
                                                   "this operation."], "errors": {}})
        path, method = request.url.path.removeprefix("/rest/api/2"), request.method
        if path == "/myself":
            return respond(200, {"accountId": "sync-account", "name": "sync", "timeZone": str(ZONE)})
        if path == "/search/jql" and method == "GET":
            return self._search(request) if self.cloud else respond(404, {"errorMessages": ["Not found"]})
        if path == "/search" and method == "GET":
            if self.cloud:
                return respond(410, {"errorMessages": ["The requested API has been removed. Please migrate to the "
                                                       "/rest/api/3/search/jql API."]})
            return self._search(request)
        if path == "/issue" and method == "POST":
            return self._create(read_json(request) or {})
        found = re.fullmatch(r"/issue/([A-Z][A-Z0-9_]*-[0-9]+)(/transitions|/comment)?", path)
        if found is None:
            return respond(404, {"errorMessages": ["Not found"], "errors": {}})
        issue = self.issues.get(found.group(1))
        if issue is None:
            return respond(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                                 "errors": {}})
        sub = found.group(2)
        if sub == "/transitions":
            return self._transitions(issue, request)
        if sub == "/comment" and method == "POST":
            body = (read_json(request) or {}).get("body")
            if not isinstance(body, str) or not body.strip():
                return respond(400, {"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}})
            self.comments.setdefault(issue["key"], []).append(body)
            self._touch(issue)
            return respond(201, {"id": str(len(self.comments)), "body": body})
        if method == "PUT":
            return self._edit(issue, read_json(request) or {})
        return respond(200, self._public(issue))

    def _authenticated(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        if self.cloud:
            return header == "Basic " + base64.b64encode(CLOUD_TOKEN.encode()).decode()
        return header == f"Bearer {SERVER_TOKEN}"

    def _create(self, data: dict[str, Any]) -> httpx.Response:
        fields = data.get("fields") or {}
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "valid project is required"
        if not str(fields.get("summary") or "").strip():
            errors["summary"] = "You must specify a summary of the issue."
        if (fields.get("issuetype") or {}).get("name") not in ("Task", "Bug", "Story"):
            errors["issuetype"] = "valid issue type is required"
        errors.update(self._field_errors(fields))
        if errors:
            return respond(400, {"errorMessages": [], "errors": errors})
        self._counter += 1
        key = f"{project}-{self._counter}"
        now = self.clock.tick()
        self.issues[key] = {"key": key, "id": str(10000 + self._counter), "summary": fields["summary"],
                            "description": fields.get("description"), "status": "To Do",
                            "priority": (fields.get("priority") or {}).get("name", "Medium"),
                            "labels": list(fields.get("labels") or []), "assignee": self._assignee(fields),
                            "created": now, "updated": now}
        return respond(201, {"id": self.issues[key]["id"], "key": key, "self": f"{self.url}/rest/api/2/issue/{key}"})

    def _edit(self, issue: dict[str, Any], data: dict[str, Any]) -> httpx.Response:
        fields = data.get("fields") or {}
        if "status" in fields:
            return respond(400, {"errorMessages": [], "errors": {"status": "Field 'status' cannot be set. It is not "
                                                                           "on the appropriate screen, or unknown."}})
        errors = self._field_errors(fields)
        if "summary" in fields and not str(fields["summary"] or "").strip():
            errors["summary"] = "You must specify a summary of the issue."
        if errors:
            return respond(400, {"errorMessages": [], "errors": errors})
        changes: dict[str, Any] = {k: fields[k] for k in ("summary", "description") if k in fields}
        if "priority" in fields:
            changes["priority"] = fields["priority"]["name"]
        if "assignee" in fields:
            changes["assignee"] = self._assignee(fields)
        labels = list(fields.get("labels", issue["labels"]))
        for op in (data.get("update") or {}).get("labels", []):
            if "add" in op and op["add"] not in labels:
                labels.append(op["add"])
            if "remove" in op and op["remove"] in labels:
                labels.remove(op["remove"])
        changes["labels"] = labels
        self._touch(issue, **changes)
        return respond(204)

    def _transitions(self, issue: dict[str, Any], request: httpx.Request) -> httpx.Response:
        if STATUSES[issue["status"]] == "done":
            offered = [("61", "To Do")]
        else:
            offered = [(tid, to) for tid, to in TRANSITIONS_OPEN if to != issue["status"]]
        if request.method == "GET":
            return respond(200, {"transitions": [
                {"id": tid, "name": TRANSITION_NAMES[tid],
                 "to": {"name": to, "statusCategory": {"key": STATUSES[to]}}} for tid, to in offered]})
        wanted = ((read_json(request) or {}).get("transition") or {}).get("id")
        target = next((to for tid, to in offered if tid == wanted), None)
        if target is None:
            return respond(400, {"errorMessages": [f"Transition id '{wanted}' is not valid for this issue."],
                                 "errors": {}})
        self._touch(issue, status=target)
        return respond(204)

    def _search(self, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        try:
            matches = self._run_jql(q.get("jql", ""))
        except ValueError as exc:
            return respond(400, {"errorMessages": [f"Error in the JQL Query: {exc}"], "errors": {}})
        size = min(int(q.get("maxResults", 50)), 100)
        if self.cloud:
            start = int(q.get("nextPageToken") or 0)
            chunk = matches[start:start + size]
            body: dict[str, Any] = {"issues": [self._public(i) for i in chunk],
                                    "isLast": start + size >= len(matches)}
            if not body["isLast"]:
                body["nextPageToken"] = str(start + size)
            return respond(200, body)
        start = int(q.get("startAt", 0))
        return respond(200, {"startAt": start, "maxResults": size, "total": len(matches),
                             "issues": [self._public(i) for i in matches[start:start + size]]})

    def _run_jql(self, jql: str) -> list[dict[str, Any]]:
        where, _, order = jql.partition(" ORDER BY ")
        issues = list(self.issues.values())
        for clause in where.split(" AND "):
            found = CLAUSE.match(clause.strip())
            if found is None:
                raise ValueError(f"cannot parse {clause.strip()!r}")
            field, op, value = found.group(1), found.group(2), found.group(3).replace('\\"', '"')
            if field == "project" and op == "=":
                issues = [i for i in issues if i["key"].split("-")[0] == value]
            elif field == "text" and op == "~":
                phrase = value.strip('"').lower()
                indexed = self.clock.now() - timedelta(seconds=self.search_lag_seconds)
                issues = [i for i in issues if phrase in " ".join(
                    [i["summary"], i["description"] or "", *self.comments.get(i["key"], [])]).lower()
                    and (self.search_lag_seconds == 0 or i["created"] <= indexed)]
            elif field in ("updated", "created") and op == ">=":
                since = datetime.strptime(value, "%Y/%m/%d %H:%M").replace(tzinfo=ZONE)
                issues = [i for i in issues if i[field] >= since]
            else:
                raise ValueError(f"unsupported clause {clause.strip()!r}")
        for term in reversed([t.strip() for t in order.split(",") if t.strip()]):
            name, _, direction = term.partition(" ")
            if name not in ("created", "updated", "key"):
                raise ValueError(f"cannot order by {name!r}")
            sort_key = (lambda i: int(i["key"].split("-")[1])) if name == "key" else (lambda i, n=name: i[n])
            issues.sort(key=sort_key, reverse=direction.strip().upper() == "DESC")
        return issues

    # -- state ----------------------------------------------------------------------------------

    def _field_errors(self, fields: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        if "priority" in fields and (fields["priority"] or {}).get("name") not in PRIORITIES:
            errors["priority"] = f"The priority selected is invalid: {fields['priority']}"
        assignee = fields.get("assignee")
        if assignee:
            who = assignee.get("accountId") if self.cloud else assignee.get("name")
            if who not in self.users:
                errors["assignee"] = f"User '{who}' cannot be assigned issues."
        if any(" " in str(label) for label in fields.get("labels") or []):
            errors["labels"] = "The label must not contain spaces."
        return errors

    def _assignee(self, fields: dict[str, Any]) -> str | None:
        assignee = fields.get("assignee")
        if not assignee:
            return None
        return str(assignee.get("accountId") if self.cloud else assignee.get("name"))

    def _touch(self, issue: dict[str, Any], **changes: Any) -> None:
        issue.update(changes)
        issue["updated"] = self.clock.tick()

    def _public(self, issue: dict[str, Any]) -> dict[str, Any]:
        def when(at: datetime) -> str:
            local = at.astimezone(ZONE)
            return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")

        assignee = None
        if issue["assignee"] is not None:
            assignee = ({"accountId": issue["assignee"], "displayName": "Alice"} if self.cloud
                        else {"name": issue["assignee"], "displayName": "Alice"})
        status = issue["status"]
        return {
            "id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/2/issue/{issue['key']}",
            "fields": {
                "summary": issue["summary"], "description": issue["description"],
                "status": {"name": status, "statusCategory": {"key": STATUSES[status]}},
                "priority": {"name": issue["priority"]}, "labels": list(issue["labels"]), "assignee": assignee,
                "created": when(issue["created"]), "updated": when(issue["updated"]),
            },
        }
