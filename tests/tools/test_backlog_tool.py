"""backlog_tool actions through the registry, as the router and CLI call them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.router.clock import FixedClock
from services.router.errors import NotFound, TransitionRefused, ValidationFailed
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.stores.base import BacklogStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(store: BacklogStore, clock: FixedClock) -> Runtime:
    settings = Settings(REPO_ROOT=REPO)  # type: ignore[call-arg]
    return build_runtime(settings, clock=clock, store=store)


def call(rt: Runtime, action: str, **params: Any) -> Any:
    return rt.execute("tester", "backlog_tool", action, params)


def new_item(rt: Runtime, key: str = "k1", **extra: Any) -> dict[str, Any]:
    result = call(rt, "upsert", env="prod", service="gateway", category="arch_review", title="Review",
                  dedupe_key=key, **extra)
    return dict(result["item"])


def test_dry_runs_write_nothing(runtime: Runtime) -> None:
    planned = call(runtime, "upsert", env="prod", service="gateway", category="x", title="T", dry_run=True)
    assert planned["dry_run"] is True and planned["action"] == "created"
    assert call(runtime, "list")["items"] == []

    item = new_item(runtime)
    before = call(runtime, "events", id=item["id"])["events"]
    plan = call(runtime, "set_status", id=item["id"], status="done", dry_run=True)
    assert plan["item"]["status"] == "done"
    assert call(runtime, "add_comment", id=item["id"], message="hi", dry_run=True)["event"]["type"] == "commented"
    assert call(runtime, "set_owner", id=item["id"], owner="bob", dry_run=True)["item"]["owner"] == "bob"
    assert call(runtime, "set_due_date", id=item["id"], due_date="2027-01-01", dry_run=True)["event"]["type"] == \
        "due_date_changed"
    assert call(runtime, "get", id=item["id"]) == {**item, "week": None}
    assert call(runtime, "events", id=item["id"])["events"] == before

    call(runtime, "set_status", id=item["id"], status="done")
    runtime.clock.advance(days=200)  # type: ignore[attr-defined]
    assert call(runtime, "cleanup", dry_run=True)["would_remove"] == 1
    assert call(runtime, "get", id=item["id"])["status"] == "done"


def test_cleanup_uses_policy_retention_by_default(runtime: Runtime, clock: FixedClock) -> None:
    item = new_item(runtime)
    call(runtime, "set_status", id=item["id"], status="canceled")
    clock.advance(days=179)
    assert call(runtime, "cleanup")["removed"] == 0
    clock.advance(days=2)
    result = call(runtime, "cleanup")
    assert (result["removed"], result["retention_days"], result["skipped"]) == (1, 180, False)
    assert call(runtime, "cleanup", retention_days=1)["removed"] == 0


def test_upsert_owner_falls_back_to_policy(runtime: Runtime) -> None:
    assert new_item(runtime)["owner"] == "oncall"
    assert new_item(runtime, "k2", owner="team-edge")["owner"] == "team-edge"


def test_dashboard_says_which_backend(runtime: Runtime, backend: str) -> None:
    new_item(runtime, due_date="2026-11-01")
    d = call(runtime, "dashboard", env="prod")
    assert (d["backend"], d["degraded"], d["total"], d["overdue_count"]) == (backend, False, 1, 1)


def test_errors_name_what_was_wrong(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed) as info:
        call(runtime, "upsert", env="PROD", service="gateway", category="x", title="T")
    assert info.value.field == "env"
    with pytest.raises(ValidationFailed) as info:
        call(runtime, "list", colour="red")
    assert (info.value.field, info.value.message) == ("colour", "colour: unknown field")
    with pytest.raises(NotFound):
        call(runtime, "get", id="bl_000000000000000000000000")
    with pytest.raises(NotFound, match="unknown action 'explode'"):
        call(runtime, "explode")
    with pytest.raises(NotFound, match="unknown tool"):
        runtime.execute("t", "nope_tool", "list", {})
    with pytest.raises(NotFound) as close:
        runtime.execute("t", "backlog_tol", "list", {})
    assert close.value.message == "unknown tool 'backlog_tol'; did you mean 'backlog_tool'?"
    with pytest.raises(NotFound) as close:
        call(runtime, "dashbord")
    assert close.value.message == "unknown action 'dashbord' for backlog_tool; did you mean 'dashboard'?"
    with pytest.raises(NotFound) as far:
        runtime.execute("t", "signals_tool", "zzz", {})
    assert far.value.message == "unknown action 'zzz' for signals_tool; known: alertmanager, ingest, list"
    item = new_item(runtime)
    call(runtime, "set_status", id=item["id"], status="done")
    with pytest.raises(TransitionRefused, match="cannot move from done to blocked; allowed: open"):
        call(runtime, "set_status", id=item["id"], status="blocked")


def test_events_record_the_actor(runtime: Runtime, clock: FixedClock) -> None:
    item = new_item(runtime)
    clock.advance(minutes=5)
    runtime.execute("bob", "backlog_tool", "add_comment", {"id": item["id"], "message": "on it"})
    events = call(runtime, "events", id=item["id"])["events"]
    assert [(e["type"], e["actor"]) for e in events] == [("created", "tester"), ("commented", "bob")]
    assert events[1]["ts"] == (clock.now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert clock.now() - timedelta(minutes=5) < clock.now()
