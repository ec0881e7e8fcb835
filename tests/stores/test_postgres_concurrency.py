"""The Postgres store under concurrent writers and very large batches, on the real server.

Regressions of a review that reproduced each failure against Postgres: advisory locks that ran
the lock table out of memory, counter rows and item rows locked in orders that deadlocked
against other writers, transactions that took the database's default isolation level.

Deadlocks are staged, not hoped for: a second plain connection (``Other``, "the other writer")
takes row locks in a chosen order while a store's transaction is in flight, and closes the
cycle only once the store's backend is seen waiting for a lock. The other writer runs with a
long ``deadlock_timeout``, so it is always the store's backend (default 1 s) that finds the
cycle and is rolled back: the store is the one that has to cope.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.errors import StoreUnavailable
from services.router.settings import Settings
from services.router.stores import pg_schema
from services.router.stores import pg_sql as q
from services.router.stores.auto import AutoBacklogStore
from services.router.stores.base import UpsertRequest
from services.router.stores.fallback_journal import JOURNAL_FILE
from services.router.stores.pg_conn import TRANSIENT
from services.router.stores.postgres import BULK_MIN, PostgresBacklogStore
from tests.factories import item
from tests.pg_support import fresh_database
from tests.stores.test_postgres_specific import counters_match

pytestmark = pytest.mark.postgres

RETRIED = "running it again"  # what the store logs when it runs a rolled-back transaction again
D0, D1, D2 = date(2030, 1, 1), date(2030, 1, 2), date(2030, 1, 3)


@pytest.fixture
def store(dsn: str, clock: FixedClock) -> Iterator[PostgresBacklogStore]:
    s = PostgresBacklogStore(dsn, clock=clock)
    yield s
    s.close()


@pytest.fixture
def store_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="backlog_store")
    return caplog


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if RETRIED in r.getMessage()]


@dataclass
class Background:
    """A call on its own thread; ``result`` or ``error`` once it is done."""

    call: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 30.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the store's call did not finish"
        if self.error is not None:
            raise self.error
        return self.result


class Other:
    """The other writer: a plain connection in one open transaction, taking locks on demand."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET deadlock_timeout = '30s'")  # the store's backend detects the cycle
        self.conn.execute("BEGIN")

    def run(self, sql: str, params: Any = None) -> None:
        self.conn.execute(sql, params)

    def lock_row(self, item_id: str) -> None:
        self.run("SELECT 1 FROM backlog_items WHERE id = %s FOR UPDATE", (item_id,))

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()

    def close(self) -> None:
        """Roll back and let go of every lock (a test that failed half-way must not leave the
        next one waiting for them)."""
        self.conn.close()

    def wait_until_store_waits(self, call: Background, timeout: float = 10.0) -> bool:
        """Until the store's backend waits for a lock (True) or its call is over (False)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.dsn, autocommit=True) as watch:
            while call.thread.is_alive():
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'backlog-bridge' AND wait_event_type = 'Lock'").fetchone()
                if waiting and waiting[0]:
                    return True
                assert time.monotonic() < deadline, "the store neither waited for a lock nor finished"
                time.sleep(0.01)
        return False


Others = Callable[[str], Other]


@pytest.fixture
def others() -> Iterator[Others]:
    opened: list[Other] = []

    def open_other(dsn: str) -> Other:
        opened.append(Other(dsn))
        return opened[-1]

    yield open_other
    for o in opened:
        o.close()


def rows(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


# -- 1. bounded advisory locks --------------------------------------------------------------
def test_a_batch_far_larger_than_the_lock_table_is_written(store: PostgresBacklogStore, dsn: str) -> None:
    """30,000 new keys: one advisory lock per key needed ~30k lock slots, and the server has
    64 x 100 (max_locks_per_transaction x max_connections): "out of shared memory". Buckets
    bound the locks of a transaction, whatever the batch (the policy allows 100,000 items)."""
    n = 30_000
    keys = [f"big{i}" for i in range(n)]
    results = store.upsert_many([UpsertRequest(item(k, service=f"svc{i % 40}")) for i, k in enumerate(keys)],
                                actor="gen")
    assert len(results) == n and {r.action for r in results} == {"created"}
    assert rows(dsn, "SELECT count(*), count(DISTINCT dedupe_key) FROM backlog_items") == [(n, n)]
    counters_match(dsn)
    assert len(q.lock_keys(keys)) <= q.LOCK_BUCKETS


def test_lock_buckets_are_stable_across_processes() -> None:
    """Every process must put a key in the same bucket (else two could write one key at once):
    a fixed hash, not Python's per-process ``hash()``; pinned so a change is a conscious one."""
    assert [q.lock_bucket(k) for k in ("k1", "bench:1")] == [890, 72]
    assert q.lock_keys(["k1", "k1", "bench:1"]) == sorted({q.BUCKET_LOCKS[890], q.BUCKET_LOCKS[72]})


def test_a_refusal_of_a_server_that_is_up_does_not_make_the_auto_store_fall_back(
        dsn: str, tmp_path: Path) -> None:
    """Out of memory (53200) for one request is no outage: the caller gets a 503 to retry, the
    store stays on Postgres. (Falling back journaled the write, and every recovery replayed it
    into the same refusal: Postgres never came back.) The refusal is real, raised by the server."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION bb_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            IF NEW.dedupe_key = 'refused' THEN
                RAISE EXCEPTION 'out of shared memory' USING ERRCODE = 'out_of_memory';
            END IF;
            RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER bb_refuse BEFORE INSERT ON backlog_items FOR EACH ROW "
                     "EXECUTE FUNCTION bb_refuse()")
    auto = AutoBacklogStore(Settings(BACKLOG_JSONL_DIR=str(tmp_path), BACKLOG_PG_RETRY_SECONDS=300,
                                     BACKLOG_PG_CONNECT_TIMEOUT_SECONDS=2, BACKLOG_POSTGRES_DSN=dsn,
                                     POSTGRES_DSN=None))
    try:
        assert auto.backend == "postgres"
        with pytest.raises(StoreUnavailable) as refused:
            auto.upsert(item("refused"), actor="gen")
        assert refused.value.details["reason"] == TRANSIENT
        assert (auto.backend, auto.degraded) == ("postgres", False)
        assert not (tmp_path / JOURNAL_FILE).exists() or (tmp_path / JOURNAL_FILE).stat().st_size == 0
        assert auto.upsert(item("fine"), actor="gen").action == "created"
        assert rows(dsn, "SELECT dedupe_key FROM backlog_items") == [("fine",)]
    finally:
        auto.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP FUNCTION bb_refuse() CASCADE")


# -- 2. counter rows: one order per transaction ----------------------------------------------
def test_counter_rows_are_not_locked_statement_by_statement(
        store: PostgresBacklogStore, dsn: str, store_log: pytest.LogCaptureFixture,
        others: Others) -> None:
    """A small batch writes one statement per row. The counters of each statement used to be
    locked by that statement: the store held day D1's counter and waited for D2's while the other
    writer held D2's and asked for D1's. Now a transaction locks its counters only at COMMIT, all
    in one sorted statement, so neither writer holds one while it waits for another."""
    store.upsert_many([UpsertRequest(item(f"seed{d}", due_date=d)) for d in (D0, D1, D2)]
                      + [UpsertRequest(item(f"other{i}", due_date=D0)) for i in (1, 2)], actor="gen")
    other = others(dsn)
    other.run("UPDATE backlog_items SET due_date = %s WHERE dedupe_key = 'other1'", (D2,))  # D0, D2 counters
    call = Background(lambda: store.upsert_many([UpsertRequest(item("new1", due_date=D1)),
                                                 UpsertRequest(item("new2", due_date=D2))], actor="gen"))
    other.wait_until_store_waits(call)
    other.run("UPDATE backlog_items SET due_date = %s WHERE dedupe_key = 'other2'", (D1,))  # D1 counter
    other.commit()
    assert [r.action for r in call.join()] == ["created", "created"]
    assert retries(store_log) == []  # no deadlock at all, not one hidden by a retry
    counters_match(dsn)


def test_two_writers_of_different_keys_do_not_deadlock_on_the_counters(
        dsn: str, clock: FixedClock, store_log: pytest.LogCaptureFixture) -> None:
    """Two stores (two processes) write small batches of new keys whose due dates come in
    opposite orders: the old per-statement counters deadlocked within a few rounds, every run."""
    stores = [PostgresBacklogStore(dsn, clock=clock) for _ in range(2)]
    start = threading.Barrier(2)

    def writer(w: int) -> int:
        first, second = (D1, D2) if w == 0 else (D2, D1)
        start.wait()
        for r in range(40):
            stores[w].upsert_many([UpsertRequest(item(f"w{w}-{r}-a", due_date=first)),
                                   UpsertRequest(item(f"w{w}-{r}-b", due_date=second))], actor=f"w{w}")
        return w

    try:
        calls = [Background(functools.partial(writer, w)) for w in range(2)]
        assert [c.join(60) for c in calls] == [0, 1]
    finally:
        for s in stores:
            s.close()
    assert retries(store_log) == []
    assert rows(dsn, "SELECT count(*) FROM backlog_items") == [(160,)]
    counters_match(dsn)


def test_a_deadlock_is_retried_and_writes_once(
        store: PostgresBacklogStore, dsn: str, store_log: pytest.LogCaptureFixture,
        others: Others) -> None:
    """A client that locks rows against the order (here: the later id first) can still deadlock
    with the store. The server rolls the store's transaction back; the store plans it again
    from scratch and commits once, instead of reporting an outage (StoreUnavailable)."""
    made = store.upsert_many([UpsertRequest(item("x")), UpsertRequest(item("y"))], actor="gen")
    first, second = sorted(r.item["id"] for r in made)
    other = others(dsn)
    other.lock_row(second)
    call = Background(lambda: store.upsert_many([UpsertRequest(item(k, title="again")) for k in ("x", "y")],
                                                actor="gen"))
    assert other.wait_until_store_waits(call)  # holds `first`, waits for `second`
    other.lock_row(first)  # the cycle: the store's backend detects it and is rolled back
    other.commit()
    assert [r.action for r in call.join()] == ["updated", "updated"]
    assert len(retries(store_log)) == 1 and "40P01" in retries(store_log)[0]
    assert rows(dsn, "SELECT i.rev, count(*) FROM backlog_items i JOIN backlog_events e ON e.item_id = i.id "
                     "GROUP BY i.id, i.rev") == [(2, 2), (2, 2)]
    counters_match(dsn)


# -- 3. item rows: id order; cleanup skips what a writer holds --------------------------------
def test_a_large_batch_locks_its_rows_in_id_order(
        store: PostgresBacklogStore, dsn: str, store_log: pytest.LogCaptureFixture,
        others: Others) -> None:
    """The bulk path locked existing rows in the batch's order; any writer locking in id order
    (the small path, and cleanup before it skipped locked rows) could then close a cycle."""
    made = store.upsert_many([UpsertRequest(item("p")), UpsertRequest(item("q"))], actor="gen")
    by_id = sorted((r.item["id"], r.item["dedupe_key"]) for r in made)
    (first, first_key), (second, second_key) = by_id
    batch = [UpsertRequest(item(second_key, title="new")), UpsertRequest(item(first_key, title="new"))]
    batch += [UpsertRequest(item(f"fill{i}")) for i in range(BULK_MIN)]
    other = others(dsn)
    other.lock_row(first)
    call = Background(lambda: store.upsert_many(batch, actor="gen"))
    assert other.wait_until_store_waits(call)
    other.lock_row(second)  # free: the store waits for `first` before it locks anything after it
    other.commit()
    assert [r.action for r in call.join()[:2]] == ["updated", "updated"]
    assert retries(store_log) == []
    counters_match(dsn)


def test_cleanup_skips_an_expired_row_a_writer_holds(store: PostgresBacklogStore, clock: FixedClock,
                                                     dsn: str,
        others: Others) -> None:
    """Cleanup deleted in its own order and waited for every locked row (and deadlocked with a
    writer holding one of them while waiting for another). It takes what is free; the held row
    goes at the next run."""
    done = [store.upsert(item(f"old{i}"), actor="gen").item["id"] for i in range(3)]
    for item_id in done:
        store.set_status(item_id, Status.DONE, actor="t")
    clock.advance(days=200)
    other = others(dsn)
    other.run("SELECT 1 FROM backlog_items WHERE id = %s FOR KEY SHARE", (done[1],))  # as add_comment does
    call = Background(lambda: store.cleanup(180))
    call.thread.join(5)
    alive = call.thread.is_alive()
    other.commit()
    assert not alive, "cleanup waited for a row a writer holds"
    assert call.join() == 2
    assert [r[0] for r in rows(dsn, "SELECT id FROM backlog_items")] == [done[1]]
    assert store.cleanup(180) == 1
    counters_match(dsn)


# -- 4. isolation level pinned -----------------------------------------------------------------
@pytest.mark.parametrize("size", [1, BULK_MIN], ids=["small", "bulk"])
def test_writes_run_read_committed_whatever_the_database_default(
        size: int, clock: FixedClock, store_log: pytest.LogCaptureFixture,
        others: Others) -> None:
    """With ``default_transaction_isolation = 'repeatable read'`` a writer's snapshot was taken
    before its advisory lock was granted; the row the lock holder had just changed then failed
    it with "could not serialize access". Writers begin READ COMMITTED themselves."""
    with fresh_database("bb_rr") as rr_dsn:
        with psycopg.connect(rr_dsn, autocommit=True) as conn:
            name = conn.info.dbname
            conn.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'")
        store = PostgresBacklogStore(rr_dsn, clock=clock)
        try:
            store.upsert(item("k"), actor="gen")
            other = others(rr_dsn)  # a writer of "k", as the store's writers do it
            other.run("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (q.lock_keys(["k"]),))
            other.run("UPDATE backlog_items SET title = 'by the other writer', rev = rev + 1 WHERE dedupe_key = 'k'")
            batch = [UpsertRequest(item("k", title="by the store"))]
            batch += [UpsertRequest(item(f"fill{i}")) for i in range(size - 1)]
            call = Background(lambda: store.upsert_many(batch, actor="gen"))
            assert other.wait_until_store_waits(call)  # for the advisory lock
            other.commit()
            assert call.join()[0].action == "updated"
            assert retries(store_log) == []
            got = store.get_by_dedupe_key("k")
            assert got is not None and (got["title"], got["rev"]) == ("by the store", 3)
        finally:
            store.close()


# -- schema step 5 ------------------------------------------------------------------------------
def test_a_database_at_step_4_upgrades_and_counts_at_commit(clock: FixedClock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database("bb_step4", migrated=False) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            monkeypatch.setattr(pg_schema, "STEPS", pg_schema.STEPS[:4])
            pg_schema.migrate(conn)
            monkeypatch.undo()
        store = PostgresBacklogStore(dsn, clock=clock)
        try:
            store.upsert_many([UpsertRequest(item(f"s{i}", service=f"svc{i % 5}", due_date=D1 if i % 2 else None))
                               for i in range(300)], actor="gen")
            counters_match(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                done = pg_schema.migrate(conn)
            assert [s.version for s in done.versions] == list(range(5, len(pg_schema.STEPS) + 1))  # 5 and later
            assert ("table", "backlog_counts_pending") in done.created
            counters_match(dsn)
            store.upsert_many([UpsertRequest(item(f"s{i}", service="moved", due_date=D2)) for i in range(250)],
                              actor="gen")
            counters_match(dsn)
            with psycopg.connect(dsn) as conn:  # one transaction: the counters move at its COMMIT
                before = conn.execute("SELECT sum(n) FROM backlog_counts WHERE kind = 'd'").fetchone()
                conn.execute("UPDATE backlog_items SET due_date = NULL WHERE due_date = %s", (D2,))
                conn.execute("UPDATE backlog_items SET status = 'done' WHERE dedupe_key = 's1'")
                assert conn.execute("SELECT sum(n) FROM backlog_counts WHERE kind = 'd'").fetchone() == before
            counters_match(dsn)
            assert rows(dsn, "SELECT count(*) FROM backlog_counts_pending") == [(0,)]
        finally:
            store.close()
