"""The Auto store against real outages: a throwaway Postgres cluster that the tests stop and start.

The cluster authenticates TCP logins with scram passwords, and the app role's password is a
canary: every test checks that it appears in no log record and no output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.settings import Settings
from services.router.stores.auto import AutoBacklogStore
from services.router.stores.fallback_journal import JOURNAL_FILE
from tests.factories import item
from tests.pg_support import FakeMonotonic, ThrowawayCluster, app_database

pytestmark = pytest.mark.postgres

CANARY = f"canary-{uuid.uuid4().hex[:16]}"
APP_USER = "bb_auto"
DB = "bb_auto_db"
RETRY = 300.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dsn(cluster: ThrowawayCluster) -> str:
    """The app database, migrated and empty."""
    return app_database(cluster, APP_USER, CANARY, DB, empty="backlog_items, backlog_events, backlog_applied_ops")


@pytest.fixture(autouse=True)
def no_canary(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The planted password never reaches a log record or the output, whatever the test did."""
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    records = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    assert CANARY not in records + out + err


def settings(dsn: str | None, tmp_path: Path) -> Settings:
    values: dict[str, Any] = {"BACKLOG_JSONL_DIR": str(tmp_path / "backlog"), "BACKLOG_PG_RETRY_SECONDS": RETRY,
                              "BACKLOG_PG_CONNECT_TIMEOUT_SECONDS": 1}
    values["BACKLOG_POSTGRES_DSN"] = dsn
    values["POSTGRES_DSN"] = None
    return Settings(**values)


def open_auto(dsn: str | None, tmp_path: Path, clock: FixedClock, monotonic: FakeMonotonic | None = None,
              ) -> AutoBacklogStore:
    return AutoBacklogStore(settings(dsn, tmp_path), clock=clock, monotonic=monotonic or FakeMonotonic())


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines as the runbook shows them (``%(name)s: %(message)s``)."""
    fmt = logging.Formatter("%(name)s: %(message)s")
    return [fmt.format(r) for r in caplog.records if r.name == "backlog_store"]


def pg_state(dsn: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, str]]]]:
    """Items by dedupe key and (type, message) of their events, read straight from Postgres."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT dedupe_key, id, title, owner, status FROM backlog_items").fetchall()
        keys = [r[0] for r in rows]
        assert len(keys) == len(set(keys))
        items = {r[0]: {"id": r[1], "title": r[2], "owner": r[3], "status": r[4]} for r in rows}
        events: dict[str, list[tuple[str, str]]] = {}
        for key, etype, message in conn.execute(
                "SELECT i.dedupe_key, e.type, e.message FROM backlog_events e JOIN backlog_items i ON i.id = e.item_id "
                "ORDER BY e.seq").fetchall():
            events.setdefault(key, []).append((etype, message))
        ids = conn.execute("SELECT count(*), count(DISTINCT id) FROM backlog_events").fetchone()
        assert ids is not None and ids[0] == ids[1]
    return items, events


def test_postgres_reachable_and_migrated(dsn: str, tmp_path: Path, clock: FixedClock,
                                         caplog: pytest.LogCaptureFixture) -> None:
    store = open_auto(dsn, tmp_path, clock)
    try:
        assert "backlog_store: using PostgresBacklogStore" in lines(caplog)
        state = store.status()
        assert (state.backend, state.degraded) == ("postgres", False)
        store.upsert(item("k1"), actor="gen")
        board = store.dashboard("prod")
        assert (board["backend"], board["degraded"], board["total"]) == ("postgres", False, 1)
        assert store.cleanup(180) == 0 and store.last_cleanup_skipped_reason is None
        assert not (tmp_path / "backlog" / JOURNAL_FILE).exists()
    finally:
        store.close()


def test_schema_missing_falls_back_with_the_reason(cluster: ThrowawayCluster, dsn: str, tmp_path: Path,
                                                   clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    empty = f"bb_empty_{uuid.uuid4().hex[:8]}"
    cluster.admin(f"CREATE DATABASE {empty} OWNER {APP_USER}")
    store = open_auto(cluster.dsn(APP_USER, CANARY, empty), tmp_path, clock)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("schema missing: run ops/scripts/migrate_backlog_postgres.py" in w for w in warnings)
        assert "backlog_store: using JsonlBacklogStore" in lines(caplog)
        assert (store.status().backend, store.status().degraded) == ("jsonl", True)
        created = store.upsert(item("k1"), actor="gen").item
        assert store.get(created["id"]) == created
        assert store.cleanup(0) == 0
        assert store.last_cleanup_skipped_reason is not None and "degraded" in store.last_cleanup_skipped_reason
    finally:
        store.close()
        cluster.admin(f"DROP DATABASE {empty} WITH (FORCE)")


def test_without_a_dsn_it_is_plain_jsonl(tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    store = open_auto(None, tmp_path, clock)
    try:
        assert "backlog_store: using JsonlBacklogStore" in lines(caplog)
        assert (store.status().backend, store.status().degraded) == ("jsonl", False)
        created = store.upsert(item("k1"), actor="gen").item
        store.set_status(created["id"], Status.DONE, actor="t")
        clock.advance(days=1)
        assert store.cleanup(0) == 1  # not degraded: there is no Postgres to wait for
        assert not (tmp_path / "backlog" / JOURNAL_FILE).exists()
    finally:
        store.close()


def test_outage_scenario(cluster: ThrowawayCluster, dsn: str, tmp_path: Path, clock: FixedClock,
                         caplog: pytest.LogCaptureFixture) -> None:
    """The issue's acceptance scenario, with a real outage."""
    tick = FakeMonotonic()
    store = open_auto(dsn, tmp_path, clock, tick)
    try:
        a = store.upsert(item("k1", title="Old title", owner="alice"), actor="gen").item
        store.set_status(a["id"], Status.IN_PROGRESS, actor="alice")

        cluster.stop()  # the pool still holds a connection: the next write finds it dead
        clock.advance(minutes=5)
        store.upsert(item("k1", title="New title"), actor="gen")  # accepted on JSONL, not lost
        assert (store.status().backend, store.status().degraded) == ("jsonl", True)
        b = store.upsert(item("k2", title="Second"), actor="gen").item
        store.set_status(b["id"], Status.BLOCKED, actor="bob")
        store.add_comment(b["id"], "waiting on vendor", actor="bob")
        board = store.dashboard("prod")
        assert (board["backend"], board["degraded"]) == ("jsonl", True)
        assert store.cleanup(0) == 0 and store.last_cleanup_skipped_reason
        assert "backlog_store: using JsonlBacklogStore" in lines(caplog)
        journal = (tmp_path / "backlog" / JOURNAL_FILE).read_bytes()

        cluster.start()
        tick.now += RETRY - 1
        assert store.status().degraded  # not yet: the retry interval has not passed
        tick.now += 1
        assert store.status().backend == "postgres"  # the lazy retry replayed and switched
        assert lines(caplog)[-1] == "backlog_store: using PostgresBacklogStore"

        items, events = pg_state(dsn)
        assert set(items) == {"k1", "k2"}
        assert {k: items["k1"][k] for k in ("id", "title", "owner", "status")} == {
            "id": a["id"], "title": "New title", "owner": "alice", "status": "in_progress"}
        assert items["k2"]["status"] == "blocked"
        assert items["k2"]["id"] == b["id"]  # the id the client was given during the outage
        assert events["k1"] == [("created", "created: Old title"), ("status_changed", "open -> in_progress"),
                                ("updated", "updated title")]
        assert events["k2"] == [("created", "created: Second"), ("status_changed", "open -> blocked"),
                                ("commented", "waiting on vendor")]
        assert store.get(b["id"]) is not None and store.events(b["id"])[-1]["message"] == "waiting on vendor"
        assert store.cleanup(180) == 0 and store.last_cleanup_skipped_reason is None

        # Replaying the same journal again changes nothing: every op id is recorded.
        (tmp_path / "backlog" / JOURNAL_FILE).write_bytes(journal)
        tick.now += RETRY
        store.status()
        assert pg_state(dsn) == (items, events)
        assert (tmp_path / "backlog" / JOURNAL_FILE).stat().st_size == 0
    finally:
        if not cluster.running:
            cluster.start()
        store.close()


def test_start_during_outage_then_try_recover(cluster: ThrowawayCluster, dsn: str, tmp_path: Path,
                                              clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    cluster.stop()
    try:
        store = open_auto(dsn, tmp_path, clock)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("unreachable" in w and "***" in w for w in warnings)
        b = store.upsert(item("k9"), actor="gen").item
        assert store.try_recover() is False
    finally:
        cluster.start()
    try:
        assert store.try_recover() is True
        items, _ = pg_state(dsn)
        assert items["k9"]["id"] == b["id"]
    finally:
        store.close()


def test_owner_and_due_date_edits_in_an_outage_are_replayed(cluster: ThrowawayCluster, dsn: str, tmp_path: Path,
                                                            clock: FixedClock) -> None:
    """An owner or due-date change accepted on the fallback reaches Postgres once, with its time;
    one the fallback cannot judge (an item only Postgres holds) is refused with 503, not guessed."""
    from datetime import date

    from services.router.errors import StoreUnavailable

    store = open_auto(dsn, tmp_path, clock)
    try:
        before = store.upsert(item("k0"), actor="gen").item
        cluster.stop()
        try:
            made = store.upsert(item("k1", due_date="2026-12-01"), actor="gen").item
            assert store.degraded
            clock.advance(minutes=5)
            store.set_owner(made["id"], "team-edge", actor="oncall", on_behalf_of="dana@example.com")
            store.set_due_date(made["id"], date(2026, 12, 24), actor="alice", message="after the freeze")
            with pytest.raises(StoreUnavailable):
                store.set_owner(before["id"], "bob", actor="alice")
        finally:
            cluster.start()
        assert store.try_recover() is True
        items, events = pg_state(dsn)
        assert items["k1"]["owner"] == "team-edge" and items["k0"]["owner"] == "oncall"
        assert [t for t, _ in events["k1"]] == ["created", "owner_changed", "due_date_changed"]
        got = store.get(made["id"])
        assert got is not None and got["due_date"] == "2026-12-24"
        assert got["updated_at"] == "2026-11-26T12:05:00.000000Z"
        assert [(e["type"], e["actor"], e.get("on_behalf_of")) for e in store.events(made["id"])] == [
            ("created", "gen", None), ("owner_changed", "oncall", "dana@example.com"),
            ("due_date_changed", "alice", None)]  # the person replayed with the edit
        assert store.trends("prod", None, 1)[0]["open_at_end"] == 2
    finally:
        store.close()


def test_an_op_committed_before_the_drop_is_not_applied_twice(dsn: str, tmp_path: Path, clock: FixedClock) -> None:
    """A write whose commit landed but whose answer was lost is journaled with the same op id;
    the replay finds that id recorded and skips it."""
    store = open_auto(dsn, tmp_path, clock)
    try:
        created = store.upsert(item("k1"), actor="gen").item
        store.add_comment(created["id"], "once", actor="bob")
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT op_id FROM backlog_applied_ops WHERE kind = 'comment'").fetchone()
        assert row is not None
        journal = tmp_path / "backlog" / JOURNAL_FILE
        journal.write_text(json.dumps({"op_id": row[0], "kind": "comment", "ts": "2026-11-26T12:00:00.000000Z",
                                       "actor": "bob", "item_id": created["id"], "dedupe_key": "k1",
                                       "message": "once"}) + "\n")
        store.failover.check()  # the periodic journal check, now
        store.status()
        assert [e["message"] for e in store.events(created["id"])] == ["created: Review gateway architecture",
                                                                      "once"]
        assert journal.stat().st_size == 0
    finally:
        store.close()


CHILD = """
import os, signal, sys
from services.router.clock import FixedClock, parse_utc
from services.router.settings import Settings
from services.router import files
from services.router.stores.auto import AutoBacklogStore
hits = [0]
def hook(name):
    if name == "replay:after_op":
        hits[0] += 1
        if hits[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
files.crash_hook = hook
AutoBacklogStore(Settings(BACKLOG_POSTGRES_DSN=os.environ["AUTO_DSN"], BACKLOG_JSONL_DIR=sys.argv[1]),
                 clock=FixedClock(parse_utc("2026-11-26T12:00:00Z")))
"""


def test_a_replay_killed_midway_then_run_again_gives_the_same_result(
        cluster: ThrowawayCluster, dsn: str, tmp_path: Path, clock: FixedClock) -> None:
    seeded = open_auto(dsn, tmp_path, clock)
    a = seeded.upsert(item("k1", title="Old", owner="alice"), actor="gen").item
    seeded.set_status(a["id"], Status.IN_PROGRESS, actor="alice")
    cluster.stop()
    try:
        seeded.upsert(item("k1", title="New"), actor="gen")
        b = seeded.upsert(item("k2", title="Second"), actor="gen").item
        seeded.set_status(b["id"], Status.BLOCKED, actor="bob")
        seeded.add_comment(b["id"], "waiting", actor="bob")
        seeded.add_comment(b["id"], "still waiting", actor="bob")
        seeded.close()
        backup = tmp_path / "journal.copy"
        shutil.copy(tmp_path / "backlog" / JOURNAL_FILE, backup)
    finally:
        cluster.start()
    env = {**os.environ, "AUTO_DSN": dsn, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "backlog"), "3"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == -9, child.stderr
    assert CANARY not in child.stdout + child.stderr
    partial, _ = pg_state(dsn)
    assert partial["k2"]["status"] == "blocked"  # three ops landed before the kill
    assert (tmp_path / "backlog" / JOURNAL_FILE).stat().st_size > 0

    store = open_auto(dsn, tmp_path, clock)  # starts by replaying what is left
    try:
        assert store.status().backend == "postgres"
        items, events = pg_state(dsn)
        assert (items["k1"]["title"], items["k1"]["owner"], items["k1"]["status"]) == ("New", "alice", "in_progress")
        assert events["k2"] == [("created", "created: Second"), ("status_changed", "open -> blocked"),
                                ("commented", "waiting"), ("commented", "still waiting")]
        assert events["k1"] == [("created", "created: Old"), ("status_changed", "open -> in_progress"),
                                ("updated", "updated title")]
        # and the whole journal once more: still the same
        shutil.copy(backup, tmp_path / "backlog" / JOURNAL_FILE)
        store.failover.check()
        store.status()
        assert pg_state(dsn) == (items, events)
    finally:
        store.close()


def test_writers_in_threads_across_an_outage_lose_nothing(cluster: ThrowawayCluster, dsn: str, tmp_path: Path,
                                                          clock: FixedClock) -> None:
    """Four threads keep writing while the server dies under them and comes back: every
    acknowledged write is in Postgres afterwards, once."""
    store = AutoBacklogStore(settings(dsn, tmp_path), clock=clock, monotonic=FakeMonotonic(),
                             pg_options={"pool_max": 4})
    acked: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    half = threading.Barrier(5)

    def writer(n: int) -> None:
        try:
            for i in range(30):
                if i == 15:
                    half.wait()  # the main thread stops the server here
                    half.wait()
                key, title = f"t{n}-{i % 20}", f"writer {n} step {i}"
                store.upsert(item(key, title=title), actor=f"w{n}")
                acked.append((key, title))
        except BaseException as exc:
            errors.append(exc)
            half.abort()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        half.wait()
        cluster.stop()
        half.wait()
        for t in threads:
            t.join(60)
        assert errors == []
        assert store.status().degraded
    finally:
        cluster.start()
    try:
        assert store.try_recover()
        items, events = pg_state(dsn)
        last = dict(acked)  # the last acknowledged title per key
        assert {k: v["title"] for k, v in items.items()} == last
        assert all(kinds[0][0] == "created" for kinds in events.values())
    finally:
        store.close()


def test_lifecycle_writes_during_an_outage_are_replayed_with_their_person(
        cluster: ThrowawayCluster, dsn: str, tmp_path: Path, clock: FixedClock) -> None:
    """Revisions (accept, close on clear), notes (escalated) and ``on_behalf_of`` journaled on the
    fallback reach Postgres with the same effect, exactly once."""
    from services.router.domain import acceptance
    from services.router.domain.enums import EventType
    from services.router.domain.revisions import Revision

    tick = FakeMonotonic()
    store = open_auto(dsn, tmp_path, clock, tick)
    try:
        cluster.stop()
        created = store.upsert(item("k1", due_date="2026-11-20"), actor="oncall", on_behalf_of="dana").item
        assert store.status().degraded
        value = acceptance.acceptance(until=clock.now().date() + timedelta(days=5),
                                      reason="vendor fix", by="admin", now=clock.now())
        store.revise(created["id"], Revision(kind="accept", accepted=value), actor="admin", on_behalf_of="erin")
        store.add_note(created["id"], EventType.ESCALATED, "escalation step 1: notify oncall", {"step": 1},
                       actor="system")
        other = store.upsert(item("k2"), actor="gen").item
        store.revise(other["id"], Revision(kind="close_on_clear", message="closed on clear: quiet",
                                           meta={"closed_on_clear": {"at": "2026-11-26"}}), actor="generator")
        cluster.start()
        tick.now += RETRY
        assert store.status().backend == "postgres"
        got = store.get(created["id"])
        assert got is not None and got["accepted"] == value
        events = store.events(created["id"])
        assert [(e["type"], e["actor"], e.get("on_behalf_of")) for e in events] == [
            ("created", "oncall", "dana"), ("accepted", "admin", "erin"), ("escalated", "system", None)]
        closed = store.get(other["id"])
        assert closed is not None and (closed["status"], closed["meta"]["closed_on_clear"]) == (
            "done", {"at": "2026-11-26"})
        assert store.dashboard("prod")["overdue_count"] == 0  # accepted: held on Postgres too
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT accepted_hold FROM backlog_items WHERE id = %s", (created["id"],)).fetchone()
        assert row is not None and row[0].isoformat() == value["until"]
    finally:
        if not cluster.running:
            cluster.start()
        store.close()
