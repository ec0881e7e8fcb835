"""Trends, problems, sorted and searched lists, and the owner / due-date edits over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from services.router.clock import FixedClock
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import new_item


def test_trends_and_problems_routes_answer_as_the_tools(client: TestClient, as_role: Callable[..., Any],
                                                       clock: FixedClock) -> None:
    for week, due in (("2026-W46", "2026-11-16"), ("2026-W47", "2026-11-23"), ("2026-W48", "2026-12-03")):
        new_item(client, f"platform_backlog:{week}:prod:gateway:security", category="security", priority="P0",
                 due_date=due)
    trends = as_role("readonly", "get", "/v1/backlog/trends", params={"env": "prod", "weeks": 3})
    assert trends.status_code == 200, trends.text
    body = trends.json()
    assert (body["env"], [w["week"] for w in body["weeks"]]) == ("prod", ["2026-W46", "2026-W47", "2026-W48"])
    assert body["weeks"][-1] == {"week": "2026-W48", "opened": 3, "closed": 0, "open_at_end": 3,
                                 "overdue_at_end": 2, "p0_open_at_end": 3}
    via_tool = as_role("readonly", "post", "/v1/tools/execute",
                       json={"tool": "backlog_tool", "action": "trends", "env": "prod", "weeks": 3}).json()
    assert via_tool["result"] == body
    problems = as_role("readonly", "get", "/v1/backlog/problems", params={"env": "prod"}).json()
    assert problems["total"] == 1 and problems["known_env"] is True
    (row,) = problems["problems"]
    assert set(row) == {"service", "category", "items", "weeks_open", "first_week", "oldest_due_date", "priority",
                        "owner", "overdue"}
    assert (row["service"], row["category"], len(row["items"]), row["first_week"], row["weeks_open"],
            row["oldest_due_date"], row["priority"], row["overdue"]) == (
        "gateway", "security", 3, "2026-W46", 3, "2026-11-16", "P0", True)


def test_bad_trends_and_problems_queries_are_422_naming_the_field(as_role: Callable[..., Any]) -> None:
    for path, params, field in [("/v1/backlog/trends", {"weeks": 105}, "weeks"),
                                ("/v1/backlog/trends", {"weeks": 0}, "weeks"),
                                ("/v1/backlog/trends", {"env": "../etc"}, "env"),
                                ("/v1/backlog/problems", {}, "env"),
                                ("/v1/backlog/problems", {"env": "prod", "limit": 501}, "limit")]:
        response = as_role("readonly", "get", path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert field in response.json()["error"]


def test_items_carry_their_week_and_sort_and_search(client: TestClient, as_role: Callable[..., Any]) -> None:
    weekly = new_item(client, "platform_backlog:2026-W47:prod:gateway:security", title="Patch gateway",
                      due_date="2026-12-01")
    manual = new_item(client, title="Rotate the DB password", due_date="2026-11-30")
    undated = new_item(client, "k3", title="GATEWAY canary")
    listed = as_role("readonly", "get", "/v1/backlog/items", params={"sort": "due_date"}).json()
    assert [(i["id"], i["week"]) for i in listed["items"]] == [
        (manual["id"], None), (weekly["id"], "2026-W47"), (undated["id"], None)]
    found = as_role("readonly", "get", "/v1/backlog/items", params={"q": "gateway", "sort": "-created_at"}).json()
    assert [i["id"] for i in found["items"]] == [undated["id"], weekly["id"]]
    first = as_role("readonly", "get", "/v1/backlog/items", params={"sort": "-due_date", "limit": 1}).json()
    rest = as_role("readonly", "get", "/v1/backlog/items",
                   params={"sort": "-due_date", "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [weekly["id"], manual["id"], undated["id"]]
    for params in ({"sort": "title"}, {"q": "x" * 101}, {"sort": "priority", "cursor": first["next_cursor"]}):
        response = as_role("readonly", "get", "/v1/backlog/items", params=params)
        assert response.status_code == 422, (params, response.text)


def test_owner_and_due_date_routes(client: TestClient, as_role: Callable[..., Any],
                                   store: MemoryBacklogStore) -> None:
    item = new_item(client, due_date="2026-12-01")
    path = f"/v1/backlog/items/{item['id']}"
    moved = as_role("oncall", "post", f"{path}/owner", json={"owner": "team-edge", "message": "edge owns it"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["item"]["owner"], moved.json()["event"]["type"]) == ("team-edge", "owner_changed")
    preview = as_role("oncall", "post", f"{path}/due-date", json={"due_date": "2026-12-24", "dry_run": True}).json()
    assert preview["dry_run"] is True and preview["item"]["due_date"] == "2026-12-24"
    assert store.get(item["id"])["due_date"] == "2026-12-01"  # type: ignore[index]
    dated = as_role("oncall", "post", f"{path}/due-date", json={"due_date": "2026-12-24"}).json()
    assert dated["event"]["meta"] == {"from": "2026-12-01", "to": "2026-12-24"}
    for body in ({"due_date": "24.12.2026"}, {}, {"due_date": None, "extra": 1}):
        assert as_role("oncall", "post", f"{path}/due-date", json=body).status_code == 422, body
    assert as_role("oncall", "post", f"{path}/owner", json={"owner": "Not A Slug"}).status_code == 422
    as_role("oncall", "post", f"{path}/status", json={"status": "done"})
    refused = as_role("oncall", "post", f"{path}/owner", json={"owner": "bob"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "cannot change the owner of a done item; allowed: open (reopen it first)"
    assert refused.json()["allowed"] == ["open"]
    missing = as_role("oncall", "post", "/v1/backlog/items/bl_000000000000/due-date", json={"due_date": None})
    assert missing.status_code == 404
    assert [e["type"] for e in store.events(item["id"])] == ["created", "owner_changed", "due_date_changed",
                                                              "status_changed"]
