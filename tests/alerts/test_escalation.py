"""Escalation of overdue work (``alerts.escalation``): each step once per item, at its day, through
the configured receiver, with an ``escalated`` event — across repeated job runs and two runner
processes at once; a day without a run fires on the next run; done and accepted items never
escalate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.router.alerts.escalation import EscalationStep, check_steps, days_overdue
from services.router.clock import FixedClock
from services.router.domain import acceptance
from services.router.domain.enums import Status
from services.router.domain.revisions import Revision
from services.router.policy import load_policy
from services.router.stores.jsonl import JsonlBacklogStore
from tests.alerts.test_alerts import Receiver200
from tests.factories import item

REPO = Path(__file__).resolve().parents[2]
DUE = date(2026, 11, 30)
POLICY = """\
alerts:
  envs: [prod]
  rules: []
  reminders: {per_owner_daily: false}
  escalation:
    - {after_days_overdue: 1, notify: owner}
    - {after_days_overdue: 7, notify: oncall}
    - {after_days_overdue: 14, page: CTO, priorities: [P0, P1]}
"""


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Receiver200]]]:
    handler = type("Handler", (Receiver200,), {"received": [], "fail": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()


class Runner:
    """A long-lived child process that runs the alert job at the moments it is sent."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.alerts.escalation_child"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.read() == {"ready": True}

    def send(self, at: datetime) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(at.isoformat() + "\n")
        self.proc.stdin.flush()

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the runner exited"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def test_each_step_fires_once_at_its_day_across_runs_and_two_runners(
        tmp_path: Path, hook: tuple[str, type[Receiver200]]) -> None:
    url, received = hook
    (tmp_path / "policy.yml").write_text(POLICY)
    clock = FixedClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    store = JsonlBacklogStore(tmp_path / "backlog", clock=clock)
    due = DUE.isoformat()
    p0 = store.upsert(item("p0", priority="P0", due_date=due, owner="alice"), actor="t").item
    p2 = store.upsert(item("p2", priority="P2", due_date=due, owner="bob"), actor="t").item
    done = store.upsert(item("done", priority="P0", due_date=due), actor="t").item
    store.set_status(done["id"], Status.DONE, actor="t")
    held = store.upsert(item("held", priority="P0", due_date=due), actor="t").item
    value = acceptance.acceptance(until=date(2027, 3, 1), reason="accepted", by="admin", now=clock.now())
    store.revise(held["id"], Revision(kind="accept", accepted=value), actor="admin")
    store.close()

    env = {**os.environ, "BACKLOG_BACKEND": "jsonl", "BACKLOG_JSONL_DIR": str(tmp_path / "backlog"),
           "BACKLOG_STATE_DIR": str(tmp_path / "state"), "BACKLOG_POLICY_PATH": str(tmp_path / "policy.yml"),
           "REPO_ROOT": str(REPO), "BACKLOG_ALERT_WEBHOOK_URL": url, "BACKLOG_LOG_LEVEL": "ERROR"}
    env.pop("BACKLOG_POSTGRES_DSN", None)
    env.pop("POSTGRES_DSN", None)
    runners = [Runner(env), Runner(env)]
    fired_on: dict[tuple[str, int], int] = {}
    try:
        # Day 0 is the due date (not overdue); day 8 is skipped: step 2 (day 7) fires on day 9's run.
        for day in (0, 1, 1, 3, 9, 9, 13, 14, 14, 20):
            at = datetime.combine(DUE + timedelta(days=day), datetime.min.time(), UTC) + timedelta(hours=6)
            for runner in runners:  # both at once: the job's state lock decides which one sends
                runner.send(at)
            for runner in runners:
                for note in runner.read()["queued"]:
                    if note["kind"] == "escalation":
                        key = (note["items"][0], note["step"])
                        assert key not in fired_on, f"step {key} fired twice"
                        fired_on[key] = day
    finally:
        for runner in runners:
            runner.close()

    assert fired_on == {(p0["id"], 1): 1, (p2["id"], 1): 1, (p0["id"], 2): 9, (p2["id"], 2): 9, (p0["id"], 3): 14}
    sent = [(n["items"][0], n["step"], n["action"], n["target"]) for n in received.received
            if n["kind"] == "escalation"]
    assert sorted(sent) == sorted([(p0["id"], 1, "notify", "alice"), (p2["id"], 1, "notify", "bob"),
                                   (p0["id"], 2, "notify", "oncall"), (p2["id"], 2, "notify", "oncall"),
                                   (p0["id"], 3, "page", "CTO")])
    reopened = JsonlBacklogStore(tmp_path / "backlog", clock=clock)
    try:
        timeline = [(e["meta"]["step"], e["meta"]["target"], e["meta"]["days_overdue"])
                    for e in reopened.events(p0["id"]) if e["type"] == "escalated"]
        assert timeline == [(1, "alice", 1), (2, "oncall", 9), (3, "CTO", 14)]
        for quiet in (done, held):
            assert [e["type"] for e in reopened.events(quiet["id"]) if e["type"] == "escalated"] == []
    finally:
        reopened.close()


def test_steps_are_validated_and_days_count_from_the_last_held_day(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ordered by after_days_overdue"):
        check_steps([EscalationStep(after_days_overdue=7, notify="oncall"),
                     EscalationStep(after_days_overdue=1, notify="owner")])
    with pytest.raises(ValueError, match="exactly one of notify, page"):
        EscalationStep(after_days_overdue=1, notify="owner", page="CTO")
    bad = tmp_path / "bad.yml"
    bad.write_text("alerts:\n  escalation:\n    - {after_days_overdue: 0, notify: owner}\n")
    with pytest.raises(Exception, match=r"alerts\.escalation\.0\.after_days_overdue"):
        load_policy(bad)
    today = date(2026, 12, 10)
    assert days_overdue({"due_date": "2026-12-01"}, today) == 9
    assert days_overdue({"due_date": "2026-12-01", "accepted": {"until": "2026-12-07"}}, today) == 3
    assert days_overdue({"due_date": None}, today) == 0
