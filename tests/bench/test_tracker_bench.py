"""The tracker bench's floor POSTs what the product's sync POSTs.

The floor is only a floor if its loop sends the very bodies the sync sends (same subjects,
descriptions with the labels footer and the marker, priority and assignee ids): a smaller body
would make Redmine's work, and so the floor, look cheaper. Here the real sync runs against a
recording transport that answers like Redmine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from bench.tracker_bench import NAME, TOKEN_ENV, Bed, floor_bodies, trackers_file
from services.router.trackers import build_adapter
from services.router.trackers.config import TrackerConfig
from services.router.trackers.model import TrackerAdapter

URL = "http://redmine.invalid"
PRIORITIES = [{"id": 3, "name": "Normal"}, {"id": 4, "name": "High"}, {"id": 5, "name": "Urgent"},
              {"id": 6, "name": "Immediate"}]
ALICE_ID = 7


class FakeServer:
    url = URL

    def new_project(self) -> str:
        return "bench"


def redmine_like(posted: list[dict[str, Any]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/enumerations/issue_priorities.json":
            return httpx.Response(200, json={"issue_priorities": PRIORITIES})
        if path == "/users.json":
            return httpx.Response(200, json={"users": [{"id": ALICE_ID, "login": "alice"}]})
        if request.method == "POST" and path == "/projects/bench/issues.json":
            body = json.loads(request.content)
            posted.append(body)
            fields = body["issue"]
            return httpx.Response(201, json={"issue": {
                "id": len(posted), "subject": fields["subject"], "description": fields["description"],
                "status": {"id": 1, "name": "New", "is_closed": False}, "priority": {"id": fields["priority_id"]},
                "created_on": "2026-12-02T20:00:00Z", "updated_on": "2026-12-02T20:00:00Z"}})
        if request.method == "GET" and path == "/projects/bench/issues.json":
            return httpx.Response(200, json={"issues": [], "total_count": 0})
        return httpx.Response(404, json={"errors": [f"unexpected {request.method} {path}"]})

    return httpx.MockTransport(handle)


def test_floor_bodies_are_what_the_sync_posts(tmp_path: Path) -> None:
    from bench.tracker_bench import seed_backlog

    records = seed_backlog(tmp_path / "seed", 9)
    bed = Bed(FakeServer(), tmp_path, tmp_path / "seed", records)
    posted: list[dict[str, Any]] = []

    def adapter_for(name: str, config: TrackerConfig, observe: Any) -> TrackerAdapter:
        return build_adapter(name, config, transport=redmine_like(posted), environ={TOKEN_ENV: "token"},
                             observe=observe)

    result = bed.sync(bed.fresh(), adapter_for)

    config = TrackerConfig.model_validate(trackers_file(URL, "bench")["trackers"][NAME])
    expected = floor_bodies(records, config, priority_ids={p["name"].casefold(): p["id"] for p in PRIORITIES},
                            user_ids={"alice": ALICE_ID})
    assert result["created"] == 9 and not result["trackers"][0]["error"]
    assert sorted(posted, key=json.dumps) == sorted(expected, key=json.dumps)
    assert all(body["issue"]["assigned_to_id"] == ALICE_ID for body in posted)  # owned items: assigned
