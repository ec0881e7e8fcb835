"""What only the Postgres store has to prove: round trips per batch, concurrent writers of one
key, the dashboard as SQL aggregates, driver errors mapped, records shaped like the others'.

Round trips and rows transferred are read from libpq's own protocol trace of the store's
connection: a round trip is the client sending and then waiting for the server (a server
message right after client messages), ``DataRow`` is one row sent to us.
"""

from __future__ import annotations

import random
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError as PydanticValidationError

from services.router.clock import FixedClock
from services.router.domain.enums import ALL_PRIORITIES, Status
from services.router.domain.queries import ItemQuery
from services.router.errors import StoreUnavailable, ValidationFailed
from services.router.stores.base import UpsertRequest
from services.router.stores.memory import MemoryBacklogStore
from services.router.stores.pg_bulk import BULK_PARTS
from services.router.stores.pg_conn import SCHEMA_MISSING
from services.router.stores.postgres import PostgresBacklogStore
from tests.factories import item
from tests.pg_support import free_port, fresh_database, truncate

pytestmark = pytest.mark.postgres
CANARY = f"canary-{uuid.uuid4().hex[:16]}"


class Traced:
    """A store on one pooled connection whose client/server messages libpq writes to a file."""

    def __init__(self, dsn: str, clock: FixedClock) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self.store = PostgresBacklogStore(dsn, clock=clock, pool_min=1, pool_max=1, on_connect=self._keep)

    def _keep(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def messages(self, action: Any) -> list[str]:
        assert self.conn is not None
        with tempfile.TemporaryFile("w+") as trace:
            self.conn.pgconn.trace(trace.fileno())
            self.conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
            try:
                action()
            finally:
                self.conn.pgconn.untrace()  # flushes
            trace.seek(0)
            return trace.read().splitlines()

    def round_trips(self, action: Any) -> int:
        """Times the client waited: a simple Query, a Flush (pipeline fetch), or a Sync not
        followed by a Flush (extended protocol). Results read while still sending do not count."""
        sent = [m.split("\t")[2].strip() for m in self.messages(action) if m.startswith("F")]
        return sum(1 for i, kind in enumerate(sent) if kind in ("Query", "Flush") or (
            kind == "Sync" and (i + 1 == len(sent) or sent[i + 1] != "Flush")))


@pytest.fixture
def traced(dsn: str, clock: FixedClock) -> Iterator[Traced]:
    t = Traced(dsn, clock)
    yield t
    t.store.close()


def batch(n: int, prefix: str = "b", title: str = "t") -> list[UpsertRequest]:
    return [UpsertRequest(item(f"{prefix}{i}", service=f"svc{i % 7}", title=f"{title} {i}")) for i in range(n)]


def test_batch_upsert_round_trips_do_not_grow_with_the_batch(traced: Traced) -> None:
    traced.store.get("warm-up")  # a connection idle for a while is pinged first: not what we measure
    small = traced.round_trips(lambda: traced.store.upsert_many(batch(2, "s"), actor="gen"))
    big = traced.round_trips(lambda: traced.store.upsert_many(batch(500), actor="gen"))
    update = traced.round_trips(lambda: traced.store.upsert_many(batch(500, title="new"), actor="gen"))
    unchanged = traced.round_trips(lambda: traced.store.upsert_many(batch(500, title="new"), actor="gen"))
    assert small == 2  # lock + read; write + commit
    # From BULK_MIN keys on: begin; locks + stage + read (one pipeline); per part (a fixed
    # number, BULK_PARTS) a COPY and a pipelined merge; commit.
    huge = traced.round_trips(lambda: traced.store.upsert_many(batch(3000, "x"), actor="gen"))
    assert big == update == huge <= 1 + 1 + 2 * BULK_PARTS + 1
    assert unchanged <= big
    assert traced.round_trips(lambda: traced.store.get_by_dedupe_key("b1")) == 1
    assert len(traced.store.list(ItemQuery(limit=500)).items) == 500


def test_batch_keys_are_deduplicated_and_events_written_once(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        results = store.upsert_many([UpsertRequest(item("k1", title="one")), UpsertRequest(item("k1", title="two"))],
                                    actor="gen")
        assert results[0].item == results[1].item and results[0].item["title"] == "two"
    finally:
        store.close()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM backlog_events").fetchone() == (1,)


def test_concurrent_writers_of_one_key_make_one_item(dsn: str, clock: FixedClock) -> None:
    """Eight stores (eight pools: like eight processes) upsert the same keys at once, in
    different orders: one item per key, one ``created`` event per key, no deadlock."""
    keys = [f"race{i}" for i in range(10)]
    stores = [PostgresBacklogStore(dsn, clock=clock, pool_min=1, pool_max=1) for _ in range(8)]
    start = threading.Barrier(len(stores))
    actions: list[str] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        order = keys[:]
        random.Random(n).shuffle(order)
        try:
            start.wait()
            for _ in range(3):
                results = stores[n].upsert_many([UpsertRequest(item(k, title=f"writer {n}")) for k in order],
                                                actor=f"w{n}")
                actions.extend(r.action for r in results)
                actions.append(stores[n].upsert(item("single", title=f"writer {n}"), actor=f"w{n}").action)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert errors == []
    assert actions.count("created") == len(keys) + 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM backlog_items").fetchone() == (11, 11)
        per_key = conn.execute(
            "SELECT i.dedupe_key, count(*) FILTER (WHERE e.type = 'created'), count(*), max(i.rev) "
            "FROM backlog_items i JOIN backlog_events e ON e.item_id = i.id GROUP BY 1").fetchall()
    for key, created, total, rev in per_key:
        assert created == 1, key
        assert total == rev  # every change wrote exactly one event, and only changes did


def seed(store: Any, n: int) -> None:
    today = date(2026, 11, 26)
    requests = []
    for i in range(n):
        due = (today + timedelta(days=(i % 40) - 30)).isoformat() if i % 3 else None
        requests.append(UpsertRequest(item(f"d{i}", env="prod" if i % 5 else "staging", service=f"svc{i % 23}",
                                           priority=ALL_PRIORITIES[(i * 7) % 4], due_date=due)))
    results = store.upsert_many(requests, actor="gen")
    statuses = list(Status)
    for i, r in enumerate(results):
        if i % 4 == 0:
            store.set_status(r.item["id"], statuses[1 + i % 4], actor="t")


def test_dashboard_is_sql_aggregates(traced: Traced, clock: FixedClock) -> None:
    """Same numbers as the memory store, in one round trip, receiving only what it shows."""
    memory = MemoryBacklogStore(clock=clock)
    seed(memory, 1500)
    seed(traced.store, 1500)
    for env in ("prod", "staging", None):
        got = traced.store.dashboard(env)
        want = memory.dashboard(env)
        assert [o["due_date"] for o in got["overdue"]] == [o["due_date"] for o in want["overdue"]]
        for o in (*got["overdue"], *want["overdue"]):
            o.pop("id"), o.pop("title")
        assert got == want
    messages = traced.messages(lambda: traced.store.dashboard("prod"))
    rows = sum(1 for m in messages if "\tDataRow" in m)
    assert rows <= 20 + 1 + 50 + 10  # status x priority groups, a count, overdue page, top services
    assert traced.round_trips(lambda: traced.store.dashboard("prod")) == 1


def test_dashboard_plans_use_the_active_indexes(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        seed(store, 3000)
    finally:
        store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE backlog_items")
        conn.execute("SET enable_seqscan = off")  # would the planner *be able* to avoid a scan?
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT count(*) FROM backlog_items WHERE env = 'prod' "
            "AND status IN ('blocked', 'in_progress', 'open') AND due_date < '2026-11-26'").fetchall())
        assert "backlog_items_active_due_idx" in plan
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT service, count(*) FROM backlog_items WHERE env = 'prod' "
            "AND status IN ('blocked', 'in_progress', 'open') GROUP BY service").fetchall())
        assert "backlog_items_active_service_idx" in plan


def test_records_have_the_memory_store_shape(dsn: str, clock: FixedClock) -> None:
    pg = PostgresBacklogStore(dsn, clock=clock)
    memory = MemoryBacklogStore(clock=clock)
    try:
        spec = item("shape", due_date="2026-12-01", evidence_refs=["INC-1", "INC-2"], tags=["weekly"],
                    meta={"z": 1, "a": {"nested": [1, 2.5, None, True]}, "week": "2026-W48"})
        records = []
        for s in (pg, memory):
            created = s.upsert(spec, actor="gen").item
            clock.advance(microseconds=123)
            s.set_status(created["id"], Status.BLOCKED, actor="t", message="why")
            s.add_comment(created["id"], "note", actor="t")
            records.append((s.get(created["id"]), s.events(created["id"])))
            clock.advance(microseconds=-123)
        (pg_item, pg_events), (mem_item, mem_events) = records
        assert list(pg_item) == list(mem_item)
        assert {**pg_item, "id": "x"} == {**mem_item, "id": "x"}
        assert pg_item["updated_at"] == "2026-11-26T12:00:00.000123Z"
        strip = [{k: v for k, v in e.items() if k not in ("id", "item_id")} for e in pg_events]
        assert strip == [{k: v for k, v in e.items() if k not in ("id", "item_id")} for e in mem_events]
        assert [list(e) for e in pg_events] == [list(e) for e in mem_events]
    finally:
        pg.close()


def test_a_list_with_fields_fetches_only_those_columns(traced: Traced) -> None:
    """Carry-over and the weeks-open gauge page through every active item of an env: the texts,
    most of each row, must not travel (a 10k-item env took 0.75 s whole, 0.06 s narrow)."""
    traced.store.upsert(item("narrow", description="d" * 2000, meta={"weeks_open": 2}), actor="gen")
    whole = traced.store.list(ItemQuery())
    narrow = traced.store.list(ItemQuery(), fields=("status", "meta"))
    assert list(narrow.items[0]) == ["id", "status", "meta"]
    assert narrow.items[0] == {k: whole.items[0][k] for k in ("id", "status", "meta")}
    sent = [m for m in traced.messages(lambda: traced.store.list(ItemQuery(), fields=("meta",)))
            if "\tDataRow\t" in m]
    assert len(sent) == 1 and "dddd" not in sent[0]
    # a key of meta alone: the rest of the meta does not travel either
    traced.store.upsert(item("keyed", meta={"weeks_open": 4, "digest": "platform/2026-W48.json"}), actor="gen")
    keyed = [m for m in traced.messages(lambda: traced.store.list(ItemQuery(), fields=("meta.weeks_open",)))
             if "\tDataRow\t" in m]
    assert len(keyed) == 2 and not any("W48" in m for m in keyed)
    assert [r["meta"] for r in traced.store.list(ItemQuery(), fields=("meta.weeks_open",)).items] == [
        {"weeks_open": 2}, {"weeks_open": 4}]


def test_cleanup_is_one_delete_and_events_cascade(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        old = store.upsert(item("old"), actor="gen").item
        store.set_status(old["id"], Status.DONE, actor="t")
        store.upsert(item("open"), actor="gen")
        clock.advance(days=200)
        assert store.cleanup(180) == 1
        assert store.envs() == ["prod"]
    finally:
        store.close()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM backlog_events WHERE item_id = %s", (old["id"],)).fetchone() == (0,)


def test_envs_walks_the_index(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        store.upsert_many([UpsertRequest(item(f"e{i}", env=env)) for i, env in enumerate(["b", "a", "c", "a"])],
                          actor="gen")
        assert store.envs() == ["a", "b", "c"]
    finally:
        store.close()


def test_unreachable_and_unmigrated_are_store_unavailable_without_the_password(clock: FixedClock) -> None:
    with pytest.raises(StoreUnavailable) as info:
        PostgresBacklogStore(f"postgresql://app:{CANARY}@127.0.0.1:{free_port()}/db", clock=clock)
    assert CANARY not in info.value.message and "app:***@" in info.value.message
    assert CANARY not in str(info.value.__cause__ or "")
    with fresh_database("bb_unmigrated", migrated=False) as empty, pytest.raises(StoreUnavailable) as missing:
        PostgresBacklogStore(empty, clock=clock)
    assert missing.value.message == SCHEMA_MISSING
    assert missing.value.details == {"reason": "schema_missing"}


def test_text_postgres_cannot_store_is_a_validation_error(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        with pytest.raises(PydanticValidationError, match="NUL"):
            item("nul", title="bad \x00 title")  # refused before any backend sees it
        # and should something bypass the model, the database's refusal is still a 422-class error
        valid = item("nul")
        with pytest.raises(ValidationFailed):
            store.upsert(valid.model_copy(update={"title": "bad \x00 title"}), actor="gen")
        with pytest.raises(ValidationFailed):
            store.upsert(valid.model_copy(update={"dedupe_key": "nul2", "meta": {"x": "\x00"}}), actor="gen")
        assert store.get_by_dedupe_key("nul") is None
    finally:
        store.close()

RECOUNT_AT_STEP_4 = (
    "SELECT env, 's', status, priority, count(*) FROM backlog_items GROUP BY 1, 2, 3, 4 "
    "UNION ALL SELECT env, 'v', service, '', count(*) FROM backlog_items "
    "WHERE status IN ('open', 'in_progress', 'blocked') GROUP BY 1, 2, 3, 4 "
    "UNION ALL SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', count(*) FROM backlog_items "
    "WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL GROUP BY 1, 2, 3, 4"
)
# Since the lifecycle step, an accepted item's overdue counter is keyed by its hold when later.
RECOUNT = RECOUNT_AT_STEP_4.replace("to_char(due_date,", "to_char(greatest(due_date, accepted_hold),")


def counters_match(dsn: str, recount_sql: str = RECOUNT) -> None:
    """``backlog_counts`` (trigger-kept, steps 4, 5 and 7) equals a recount of the items."""
    with psycopg.connect(dsn) as conn:
        kept = {r[:4]: r[4] for r in conn.execute("SELECT env, kind, a, b, n FROM backlog_counts WHERE n <> 0")}
        recount = {r[:4]: r[4] for r in conn.execute(recount_sql)}
    assert kept == recount


def test_dashboard_counters_follow_every_write(dsn: str, clock: FixedClock) -> None:
    store = PostgresBacklogStore(dsn, clock=clock)
    try:
        seed(store, 600)  # bulk path, then single status changes
        counters_match(dsn)
        store.upsert_many([UpsertRequest(item(f"d{i}", owner="alice", title=f"new {i}")) for i in range(300)],
                          actor="gen")
        store.upsert_many(batch(5), actor="gen")  # small (pipelined) path
        counters_match(dsn)
        for r in store.list(ItemQuery(status=Status.OPEN, limit=30)).items:
            store.set_status(r["id"], Status.CANCELED, actor="t")
        counters_match(dsn)
        clock.advance(days=200)
        assert store.cleanup(180) == 30
        counters_match(dsn)
        truncate(dsn)
        counters_match(dsn)
        assert store.dashboard("prod")["total"] == 0
    finally:
        store.close()


def test_a_database_at_step_3_needs_migration_and_step_4_backfills(clock: FixedClock) -> None:
    from services.router.stores.pg_schema import migrate

    with fresh_database("bb_step3") as dsn:
        store = PostgresBacklogStore(dsn, clock=clock)
        try:
            seed(store, 400)
            want = store.dashboard(None)
        finally:
            store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:  # back to step 3, items kept
            conn.execute("DROP FUNCTION backlog_counts_trigger() CASCADE")
            conn.execute("DROP TABLE backlog_counts")
            conn.execute("DELETE FROM schema_migrations WHERE version = 4")
        with pytest.raises(StoreUnavailable, match=SCHEMA_MISSING):
            PostgresBacklogStore(dsn, clock=clock)
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
        counters_match(dsn)
        store = PostgresBacklogStore(dsn, clock=clock)
        try:
            assert store.dashboard(None) == want
        finally:
            store.close()
