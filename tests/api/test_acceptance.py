"""Accepting a risk until a date, through the API and the alert job (issue 19's acceptance line).

An accepted overdue P0 counts neither in ``overdue_count`` nor in ``p0_overdue`` (on the dashboard
or in the notifier's pages); the day after its date it does again, by date alone, and the jobs
write exactly one ``acceptance_expired`` event. Refused without a reason, with a date in the
past, or for an account without ``tools.backlog.admin``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.stores.memory import MemoryBacklogStore
from tests.alerts.test_alerts import Receiver200
from tests.api.conftest import headers_for, make_rbac, make_runtime, new_item

ADMIN = headers_for("admin")


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Receiver200]]]:
    handler = type("Handler", (Receiver200,), {"received": [], "fail": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()


@pytest.fixture
def client(store: MemoryBacklogStore, clock: FixedClock, tmp_path: Path,
           hook: tuple[str, type[Receiver200]]) -> Iterator[TestClient]:
    (tmp_path / "backlog_policy.yml").write_text(
        "defaults: {retention_days: 180, max_items_per_run: 50}\nownership: {default_owner: oncall}\n"
        "lifecycle: {restart_due_on_expiry: false, max_accept_days: 30}\n")
    runtime = make_runtime(store, clock, tmp_path, BACKLOG_ALERT_WEBHOOK_URL=hook[0])
    with TestClient(create_app(runtime, make_rbac())) as test_client:
        yield test_client


def board(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/backlog/dashboard?env=prod", headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


def notify(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/tools/execute", json={"tool": "backlog_tool", "action": "notify_alerts"},
                           headers=ADMIN)
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def accept(client: TestClient, item_id: str, role: str = "admin", **body: Any) -> Any:
    return client.post(f"/v1/backlog/items/{item_id}/accept", json=body, headers=headers_for(role))


def test_an_accepted_overdue_p0_stays_quiet_until_its_date(client: TestClient, clock: FixedClock,
                                                           hook: tuple[str, type[Receiver200]]) -> None:
    _, received = hook
    p0 = new_item(client, "p0", priority="P0", category="security", due_date="2026-11-20")
    assert (board(client)["overdue_count"], [a["rule"] for a in board(client)["alerts"]]) == (1, ["p0_overdue"])

    # Refusals: nothing is written by any of them.
    no_reason = accept(client, p0["id"], until="2026-11-30")
    assert (no_reason.status_code, no_reason.json()["field"]) == (422, "reason")
    blank = accept(client, p0["id"], until="2026-11-30", reason="   ")
    assert (blank.status_code, blank.json()["field"]) == (422, "reason")
    past = accept(client, p0["id"], until="2026-11-25", reason="vendor fix")
    assert (past.status_code, past.json()["field"]) == (409, "until")
    assert "not in the future" in past.json()["error"]
    today = accept(client, p0["id"], until="2026-11-26", reason="vendor fix")
    assert today.status_code == 409
    too_far = accept(client, p0["id"], until="2026-12-27", reason="vendor fix")  # max_accept_days 30
    assert too_far.status_code == 409 and "lifecycle.max_accept_days (30)" in too_far.json()["error"]
    for role in ("oncall", "readonly"):
        refused = accept(client, p0["id"], role, until="2026-11-30", reason="vendor fix")
        assert refused.status_code == 403 and refused.json()["entitlement"] == "tools.backlog.admin"
    events = client.get(f"/v1/backlog/items/{p0['id']}/events", headers=ADMIN).json()["events"]
    assert [e["type"] for e in events] == ["created"]

    done = accept(client, p0["id"], until="2026-11-30", reason="vendor patch lands Monday")
    assert done.status_code == 200, done.text
    item = done.json()["item"]
    assert item["status"] == "open" and item["accepted"] == {
        "until": "2026-11-30", "reason": "vendor patch lands Monday", "by": "admin",
        "at": "2026-11-26T12:00:00.000000Z"}
    assert client.get(f"/v1/backlog/items/{p0['id']}", headers=ADMIN).json()["accepted"] == item["accepted"]

    quiet = board(client)
    assert (quiet["overdue_count"], quiet["overdue"], quiet["alerts"]) == (0, [], [])
    assert quiet["accepted_count"] == 1 and [a["id"] for a in quiet["accepted"]] == [p0["id"]]
    assert client.get("/v1/backlog/items?env=prod&overdue=true", headers=ADMIN).json()["items"] == []
    first = notify(client)
    assert first["firing"] == {"prod": []} and received.received == []  # no page, no reminder

    clock.set(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))  # the last accepted day
    assert board(client)["overdue_count"] == 0
    clock.set(datetime(2026, 12, 1, 0, 1, tzinfo=UTC))  # the day after: it counts again, before any job ran
    loud = board(client)
    assert (loud["overdue_count"], [a["rule"] for a in loud["alerts"]], loud["accepted_count"]) == (
        1, ["p0_overdue"], 0)
    second = notify(client)
    assert second["acceptances_expired"] == [p0["id"]]
    assert [(n["kind"], n.get("rule")) for n in received.received] == [("firing", "p0_overdue"), ("reminder", None)]
    clock.advance(minutes=15)
    assert notify(client)["acceptances_expired"] == []
    timeline = client.get(f"/v1/backlog/items/{p0['id']}/events", headers=ADMIN).json()["events"]
    assert [e["type"] for e in timeline] == ["created", "accepted", "acceptance_expired"]
    assert client.get(f"/v1/backlog/items/{p0['id']}", headers=ADMIN).json()["accepted"] is None


def test_unaccept_counts_again_at_once_and_the_cli_tool_actions_match(client: TestClient) -> None:
    item = new_item(client, "k", priority="P0", due_date="2026-11-20")
    assert accept(client, item["id"], until="2026-12-10", reason="waiting on vendor").status_code == 200
    preview = client.post(f"/v1/backlog/items/{item['id']}/unaccept", json={"dry_run": True}, headers=ADMIN)
    assert preview.json()["dry_run"] is True and preview.json()["item"]["accepted"] is None
    assert board(client)["overdue_count"] == 0  # the dry run changed nothing
    refused = client.post(f"/v1/backlog/items/{item['id']}/unaccept", headers=headers_for("oncall"))
    assert refused.status_code == 403
    withdrawn = client.post(f"/v1/backlog/items/{item['id']}/unaccept", headers=ADMIN)
    assert withdrawn.status_code == 200 and withdrawn.json()["event"]["type"] == "unaccepted"
    assert board(client)["overdue_count"] == 1
    body = {"tool": "backlog_tool", "action": "accept",
            "params": {"id": item["id"], "until": "2026-12-01", "reason": "again", "dry_run": "yes"}}
    strict = client.post("/v1/tools/execute", json=body, headers=ADMIN)
    assert (strict.status_code, strict.json()["field"]) == (422, "dry_run")
    body["params"]["dry_run"] = False  # type: ignore[index]
    assert client.post("/v1/tools/execute", json=body, headers=ADMIN).status_code == 200
    done = client.post(f"/v1/backlog/items/{item['id']}/status", json={"status": "done"}, headers=ADMIN)
    assert done.status_code == 200
    closed = new_item(client, "closed")
    client.post(f"/v1/backlog/items/{closed['id']}/status", json={"status": "canceled"}, headers=ADMIN)
    refused_closed = accept(client, closed["id"], until="2026-12-01", reason="x")
    assert refused_closed.status_code == 409 and "only open, in_progress or blocked" in refused_closed.json()["error"]


def test_restart_due_on_expiry_moves_the_due_date_from_the_expiry(store: MemoryBacklogStore, clock: FixedClock,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "backlog_policy.yml").write_text("lifecycle: {restart_due_on_expiry: true}\n")
    with TestClient(create_app(make_runtime(store, clock, tmp_path), make_rbac())) as client:
        item = new_item(client, "sec", priority="P0", category="security", due_date="2026-11-20")
        accepted = accept(client, item["id"], until="2026-11-30", reason="compensating control").json()["item"]
        assert accepted["accepted"]["due_on_expiry"] == "2026-12-08"  # security: due 7 days after 2026-12-01
        clock.set(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        assert board(client)["overdue_count"] == 0  # the restarted due date holds already
        timeline = client.get(f"/v1/backlog/items/{item['id']}/events", headers=ADMIN).json()["events"]
        assert timeline[-1]["type"] == "acceptance_expired"  # reading the timeline records the expiry
        assert timeline[-1]["meta"]["due_to"] == "2026-12-08"
        assert client.get(f"/v1/backlog/items/{item['id']}", headers=ADMIN).json()["due_date"] == "2026-12-08"
        clock.set(datetime(2026, 12, 9, 9, 0, tzinfo=UTC))
        assert board(client)["overdue_count"] == 1
