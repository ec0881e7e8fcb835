"""Alert rules at their boundaries, and the notifier's state machine against a real HTTP receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.router.alerts.receivers import Receiver
from services.router.alerts.run import run_notifier
from services.router.alerts.state import AlertStateFile
from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.stores.base import BacklogStore, UpsertRequest
from services.router.tools.context import ToolContext
from tests.factories import item

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 26)


def notifier_args(ctx: ToolContext) -> tuple[Any, ...]:
    """What ``backlog_tool.notify_alerts`` passes from its context: store, alert policy, clock."""
    return ctx.store, ctx.policy().alerts, ctx.clock


@pytest.fixture
def runtime(store: BacklogStore, clock: FixedClock, tmp_path: Path) -> Runtime:
    settings = Settings(REPO_ROOT=REPO, BACKLOG_STATE_DIR=tmp_path / "state")  # type: ignore[call-arg]
    return build_runtime(settings, clock=clock, store=store)


def add_overdue(rt: Runtime, n: int, *, priority: str = "P2", due: date | None = None, start: int = 0,
                owner: str = "alice") -> list[str]:
    due_date = (due or TODAY - timedelta(days=3)).isoformat()
    return [rt.store.upsert(item(f"k{start + i}", priority=priority, due_date=due_date, owner=owner), actor="t")
            .item["id"] for i in range(n)]


def fired(rt: Runtime) -> list[str]:
    d = rt.execute("t", "backlog_tool", "dashboard", {"env": "prod"})
    return [a["rule"] for a in d["alerts"]]


def test_overdue_count_boundary(runtime: Runtime) -> None:
    add_overdue(runtime, 5)
    assert fired(runtime) == []
    add_overdue(runtime, 1, start=5)
    alerts = runtime.execute("t", "backlog_tool", "dashboard", {"env": "prod"})["alerts"]
    assert [(a["rule"], a["target"], a["severity"], len(a["items"])) for a in alerts] == [
        ("overdue_backlog", "oncall", "warning", 6)]


def test_p0_due_yesterday_pages_the_cto_but_due_today_does_not(runtime: Runtime) -> None:
    add_overdue(runtime, 1, priority="P0", due=TODAY)
    assert fired(runtime) == []
    ids = add_overdue(runtime, 1, priority="P0", due=TODAY - timedelta(days=1), start=1)
    alerts = runtime.execute("t", "backlog_tool", "dashboard", {"env": "prod"})["alerts"]
    assert [(a["rule"], a["target"], a["action"], a["items"]) for a in alerts] == [("p0_overdue", "CTO", "page", ids)]
    runtime.store.set_status(ids[0], Status.DONE, actor="t")  # done items are never overdue
    assert fired(runtime) == []


def test_p0_value_counts_every_overdue_item_beyond_the_listed_ids(runtime: Runtime) -> None:
    ids = [r.item["id"] for r in runtime.store.upsert_many(
        [UpsertRequest(item(f"p0-{i}", priority="P0", due_date="2026-11-20")) for i in range(MAX_PAGE + 20)],
        actor="t")]
    alert = next(a for a in runtime.execute("t", "backlog_tool", "dashboard", {"env": "prod"})["alerts"]
                 if a["rule"] == "p0_overdue")
    assert alert["value"] == MAX_PAGE + 20
    assert alert["items"] == sorted(ids)[:MAX_PAGE]
    assert f"{MAX_PAGE + 20} overdue P0 items" in alert["message"]


class Receiver200(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    fail = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).fail:
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append(orjson.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, type[Receiver200]]]:
    handler = type("Handler", (Receiver200,), {"received": [], "fail": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver("webhook", f"http://127.0.0.1:{server.server_port}/hook", "json"), handler
    server.shutdown()


def notify(rt: Runtime, recv: Receiver, tmp_path: Path) -> dict[str, Any]:
    return run_notifier(*notifier_args(rt.context("scheduler")), envs=["prod"], receivers=[recv],
                        state_file=AlertStateFile(tmp_path / "state" / "alerts.json"), dry_run=False)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_notification_state_machine(runtime: Runtime, clock: FixedClock, tmp_path: Path,
                                    receiver: tuple[Receiver, type[Receiver200]]) -> None:
    recv, handler = receiver
    ids = add_overdue(runtime, 6)
    notify(runtime, recv, tmp_path)
    kinds = [(n["kind"], n.get("rule")) for n in handler.received]
    assert kinds == [("firing", "overdue_backlog"), ("reminder", None)]
    # 15 minutes later, same items: nothing new (the reminder is once a day)
    clock.advance(minutes=15)
    notify(runtime, recv, tmp_path)
    assert len(handler.received) == 2
    # the item set grows: one more notification
    add_overdue(runtime, 1, start=6)
    clock.advance(minutes=15)
    notify(runtime, recv, tmp_path)
    assert [n["kind"] for n in handler.received[2:]] == ["grown"]
    # after the cool-down (240 min) a still-firing alert repeats once
    clock.advance(minutes=241)
    notify(runtime, recv, tmp_path)
    assert [n["kind"] for n in handler.received[3:]] == ["repeat"]
    # it stops firing: resolved, once
    for overdue in runtime.store.list(ItemQuery(overdue=True)).items:
        runtime.store.set_status(overdue["id"], Status.DONE, actor="t")
    assert fired(runtime) == [] and len(ids) == 6
    clock.advance(minutes=15)
    notify(runtime, recv, tmp_path)
    notify(runtime, recv, tmp_path)
    assert [n["kind"] for n in handler.received[4:]] == ["resolved"]


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_receiver_down_is_retried_not_lost_not_duplicated(
    runtime: Runtime, clock: FixedClock, tmp_path: Path, receiver: tuple[Receiver, type[Receiver200]]
) -> None:
    recv, handler = receiver
    add_overdue(runtime, 1, priority="P0")
    handler.fail = True
    result = notify(runtime, recv, tmp_path)
    assert (result["delivered"], result["failed"], result["outbox"]) == (0, 2, 2)
    clock.advance(minutes=15)
    result = notify(runtime, recv, tmp_path)  # still down: nothing new queued, still pending
    assert result["queued"] == [] and result["outbox"] == 2
    handler.fail = False
    clock.advance(minutes=15)
    result = notify(runtime, recv, tmp_path)
    assert (result["delivered"], result["outbox"]) == (2, 0)
    assert sorted(n["kind"] for n in handler.received) == ["firing", "reminder"]
    notify(runtime, recv, tmp_path)
    assert len(handler.received) == 2
    assert len({n["id"] for n in handler.received}) == 2


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_dry_run_sends_and_records_nothing(runtime: Runtime, tmp_path: Path,
                                           receiver: tuple[Receiver, type[Receiver200]]) -> None:
    recv, handler = receiver
    add_overdue(runtime, 6)
    result = run_notifier(*notifier_args(runtime.context("t")), envs=["prod"], receivers=[recv],
                          state_file=AlertStateFile(tmp_path / "state" / "alerts.json"), dry_run=True)
    assert [n["kind"] for n in result["would_send"]] == ["firing", "reminder"]
    assert handler.received == [] and not (tmp_path / "state" / "alerts.json").exists()


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_without_a_receiver_nothing_is_recorded_so_a_later_receiver_still_hears_it(
    runtime: Runtime, clock: FixedClock, tmp_path: Path, receiver: tuple[Receiver, type[Receiver200]]
) -> None:
    recv, handler = receiver
    add_overdue(runtime, 6)
    state = AlertStateFile(tmp_path / "state" / "alerts.json")
    result = run_notifier(*notifier_args(runtime.context("t")), envs=["prod"], receivers=[], state_file=state,
                          dry_run=False)
    assert result["skipped"] is True and "BACKLOG_ALERT_WEBHOOK_URL" in result["reason"]
    assert "2 notification(s) wait" in result["reason"]
    clock.advance(minutes=15)
    notify(runtime, recv, tmp_path)  # a receiver is configured now: the alert already firing is sent
    assert [n["kind"] for n in handler.received] == ["firing", "reminder"]
