"""Postgres backend (``BACKLOG_BACKEND=postgres``): psycopg 3 with a connection pool (DESIGN §8).

- The rules are the shared planners of ``domain.changes``: a write reads the current rows,
  plans in Python exactly as the memory store does, and writes only real changes — so
  "unchanged" means the same thing on every backend and a no-op writes nothing.
- One transaction per change: the item row, its event (and, for the Auto store, the id of the
  operation) commit together. Writers of one dedupe key are serialized by an advisory lock (of
  the key's bucket, ``pg_sql.LOCK_BUCKETS``) taken before reading, so two processes creating the
  same key make one item with one event.
- No lock waits in a cycle: advisory locks in sorted order, then item rows in id order, then
  (at COMMIT, schema step 5) counter rows in key order; cleanup skips locked rows. Transactions
  run READ COMMITTED whatever the database's default, so a row read under a lock is current.
  Should the server still report a deadlock or a serialization failure, the transaction is run
  again from the start (``TX_ATTEMPTS``): it rolled back, so planning it again writes once.
- Round trips are constant per call, not per item: a batch locks its keys and reads them in one
  pipeline, then writes every changed row and event with ``executemany`` in a second one.
- The dashboard is SQL aggregates over indexes; cleanup is one ``DELETE`` (events cascade).
- The pool, transactions, driver errors and retries are ``pg_conn``'s; the replay of the Auto
  store's journal is ``fallback_journal``'s (through ``transaction``, ``begin_op`` and
  ``write_change``, so a replayed op is recorded in the same transaction as its effect).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from services.router.clock import Clock, SystemClock, parse_utc
from services.router.domain import dashboard as board
from services.router.domain.changes import Change, Record, dedupe_key_of, plan_comment, plan_status, plan_upsert
from services.router.domain.edits import plan_due_date, plan_owner
from services.router.domain.enums import ALL_PRIORITIES, EventType, Status
from services.router.domain.models import ItemInput
from services.router.domain.queries import ItemQuery, OverdueIds, Page
from services.router.domain.revisions import Revision, plan_note, plan_revision
from services.router.domain.sorting import encode_cursor
from services.router.domain.trends import trend_weeks
from services.router.errors import NotFound
from services.router.stores import pg_sql as q
from services.router.stores import pg_trend_rollup, pg_trends
from services.router.stores.base import (
    DEFAULT_OWNER,
    StoreStatus,
    UpsertRequest,
    WriteResult,
    cleanup_cutoff,
    dedupe_batch,
)
from services.router.stores.pg_bulk import bulk_parts, numbered_record
from services.router.stores.pg_conn import Conn, PgConnections, retrying

log = logging.getLogger("backlog_store")

APPLIED_OPS_MIN_DAYS = 30
# From this many distinct keys on, an upsert writes with COPY + one merge instead of pipelined
# executemany (COPY cannot run in pipeline mode, so that path costs a few more round trips).
BULK_MIN = 200


@dataclass(frozen=True, slots=True)
class OpContext:
    """An Auto-store operation: its id is recorded with its effect, in the same transaction.

    ``now`` and ``ids`` replay an operation accepted on the JSONL fallback: it happens at the
    time it was accepted, and an item it creates keeps the id the client was given.
    ``always_record`` (replay) records the op even when it changes nothing, so a replay that is
    interrupted and run again never re-plans an earlier operation against later state.
    """

    op_id: str
    kind: str
    now: datetime | None = None
    ids: Mapping[str, str] = field(default_factory=dict)
    always_record: bool = False


class OpAlreadyApplied(Exception):
    """The op id is recorded already (a replay run again); the replay skips it."""


class PostgresBacklogStore:
    backend = "postgres"

    def __init__(
        self, dsn: str, *, clock: Clock | None = None, pool_min: int = 1, pool_max: int = 4,
        connect_timeout: float = 3.0, on_connect: Callable[[Conn], None] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._db = PgConnections(dsn, pool_min=pool_min, pool_max=pool_max, connect_timeout=connect_timeout,
                                 on_connect=on_connect)

    @property
    def dsn_redacted(self) -> str:
        return self._db.dsn_redacted

    @property
    def dsn(self) -> str:
        """The database this store writes to (a secret: never log it; ``dsn_redacted`` is for that)."""
        return self._db.dsn

    def begin_op(self, conn: Conn, keys: Sequence[str], op: OpContext | None) -> None:
        """Lock the keys and, for a replayed op, refuse one already applied."""
        if keys:
            conn.execute(q.LOCK_KEYS, (q.lock_keys(keys),))
        if op is not None and op.always_record and conn.execute(q.OP_APPLIED, (op.op_id,)).fetchone():
            raise OpAlreadyApplied(op.op_id)

    def write_change(self, conn: Conn, changes: Sequence[Change], events: Sequence[Record],
               op: OpContext | None, outcome: str = "applied") -> None:
        with conn.cursor() as cur:
            if changes:
                cur.executemany(q.UPSERT_ITEM, [q.item_row(c.item) for c in changes])
            if events:
                cur.executemany(q.INSERT_EVENT, [q.event_row(e) for e in events])
        if op is not None and (changes or events or op.always_record):
            conn.execute(q.RECORD_OP, (op.op_id, op.kind, outcome, self.clock.now()))

    # -- reads ---------------------------------------------------------------------------
    def get(self, item_id: str) -> Record | None:
        rows = self._db.read(q.BY_ID, (item_id,))
        return rows[0] if rows else None

    def get_by_dedupe_key(self, key: str) -> Record | None:
        return self.get_many_by_dedupe_key([key]).get(key)

    def get_many_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, Record]:
        if not keys:
            return {}
        found = {r["dedupe_key"]: r for r in self._db.read(q.BY_KEYS, (list(keys),))}
        return {k: found[k] for k in keys if k in found}

    def list(self, query: ItemQuery, *, fields: Collection[str] | None = None) -> Page:
        sql, params = q.list_query(query, self.clock.now().date(), fields)
        hits = self._db.read(sql, params)
        more = len(hits) > query.limit
        page = hits[: query.limit]
        # Built, not validated: the rows are the driver's fresh dicts, and validating copies each one.
        return Page.model_construct(items=page, next_cursor=encode_cursor(query.sort, page[-1]) if more and page
                                    else None)

    def events(self, item_id: str) -> builtins.list[Record]:
        rows = self._db.read(q.EVENTS_OF, (item_id,))
        if not rows:
            raise NotFound(f"no backlog item {item_id}", id=item_id)
        return [q.event_record(r) for r in rows if r["id"] is not None]

    def overdue_ids(self, env: str | None, priority: str | None, *, limit: int) -> OverdueIds:
        params = {"env": env, "priority": priority, "today": self.clock.now().date(), "limit": limit}
        row = self._db.read(q.overdue_ids_query(env, priority), params)[0]
        return OverdueIds(int(row["n"]), list(row["ids"]))

    def dashboard(self, env: str | None = None) -> dict[str, Any]:
        now = self.clock.now()
        params = {"env": env, "today": now.date(), "today_text": now.date().isoformat(), "ranks": list(ALL_PRIORITIES),
                  "limit": board.OVERDUE_LIMIT, "top": board.TOP_SERVICES}
        queries = q.dashboard_queries(env)
        with self._db.conn() as conn:
            # One snapshot for all five queries, one round trip for all of them.
            cursors = [conn.cursor(row_factory=dict_row) for _ in queries]
            with conn.pipeline():
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                for cur, sql in zip(cursors, queries, strict=True):
                    cur.execute(sql, params)
                conn.execute("COMMIT")
            results = [c.fetchall() for c in cursors]
        return q.dashboard_record(env, now, *results)

    def accepted_items(self, env: str | None = None) -> builtins.list[Record]:
        if env is None:
            return self._db.read(q.ACCEPTED_ITEMS)
        return self._db.read(q.ACCEPTED_ITEMS_OF_ENV, (env,))

    def envs(self) -> builtins.list[str]:
        return [r["env"] for r in self._db.read(q.ENVS)]

    def trends(self, env: str | None, service: str | None, weeks: int) -> builtins.list[Record]:
        """Completed weeks from the rollup of schema step 9, the current one live (``pg_trend_rollup``)."""
        now = self.clock.now()
        return pg_trend_rollup.trends(self._db, now, env, service, trend_weeks(now.date(), weeks))

    def problems(self, env: str, service: str | None = None) -> builtins.list[Record]:
        sql, params = pg_trends.problems_query(env, service, self.clock.now().date())
        return [pg_trends.problem_record(r) for r in self._db.read(sql, params)]

    def status(self) -> StoreStatus:
        return StoreStatus(backend=self.backend, detail=self._db.stats())

    # -- writes --------------------------------------------------------------------------
    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER,
               on_behalf_of: str | None = None, op: OpContext | None = None) -> WriteResult:
        return self.upsert_many([UpsertRequest(item, fallback_owner)], actor=actor, on_behalf_of=on_behalf_of,
                                op=op)[0]

    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str, on_behalf_of: str | None = None,
                    op: OpContext | None = None) -> builtins.list[WriteResult]:
        unique = dedupe_batch(requests)
        if not unique:
            return []
        keys = [dedupe_key_of(r.item) for r in unique]
        who = (actor, on_behalf_of)
        if len(unique) >= BULK_MIN:
            changes = retrying(lambda: self._upsert_bulk(unique, keys, who=who, op=op))
        else:
            changes = retrying(lambda: self._upsert_small(unique, keys, who=who, op=op))
        if len(unique) == len(requests):  # no key twice: the changes are in request order
            return [_result(c) for c in changes]
        by_key = dict(zip(keys, changes, strict=True))
        return [_result(by_key[dedupe_key_of(r.item)]) for r in requests]

    def _upsert_small(self, unique: Sequence[UpsertRequest], keys: Sequence[str], *, who: tuple[str, str | None],
                      op: OpContext | None) -> builtins.list[Change]:
        """A small batch: one pipelined transaction (``_tx``), one statement per changed row."""
        with self._db.tx() as conn:
            self.begin_op(conn, keys, op)
            existing = self._locked_rows(conn, keys)
            now = self._op_now(op)
            changes = [self._plan(existing.get(k), r, now, who, op) for k, r in zip(keys, unique, strict=True)]
            real = [c for c in changes if c.event is not None]
            self.write_change(conn, real, [c.event for c in real if c.event is not None], op)
        return changes

    @staticmethod
    def _locked_rows(conn: Conn, keys: Sequence[str]) -> dict[str, Record]:
        with conn.cursor(row_factory=dict_row) as cur:
            return {r["dedupe_key"]: r for r in cur.execute(q.BY_KEYS + " FOR UPDATE", (keys,)).fetchall()}

    @staticmethod
    def _plan(existing: Record | None, request: UpsertRequest, now: datetime, who: tuple[str, str | None],
              op: OpContext | None) -> Change:
        change = plan_upsert(existing, request.item, fallback_owner=request.fallback_owner, now=now, actor=who[0],
                             on_behalf_of=who[1])
        if op is not None and op.ids:
            change = _keep_id(change, op.ids.get(change.item["dedupe_key"]))
        return change

    def _upsert_bulk(self, unique: Sequence[UpsertRequest], keys: Sequence[str], *, who: tuple[str, str | None],
                     op: OpContext | None) -> builtins.list[Change]:
        """A large batch: the same locks, read and planners as the small path, written by COPY
        into a temp table and one merge statement per part of the batch (``bulk_parts``).

        One plain transaction (COPY cannot run in pipeline mode; READ COMMITTED, as
        ``_configure`` sets), but each merge is sent in a short pipeline and the next part is
        planned while the server runs it: the server's work (the merge, its index, trigger and
        FK work) overlaps the planning, instead of starting only once the whole batch is
        planned. Likewise the locked rows are converted to records part by part, as each part
        is planned.
        """
        with self._db.conn() as conn, conn.transaction(), conn.cursor(row_factory=numbered_record) as found:
            with conn.pipeline():  # one round trip: locks, the stage, the locked read
                self.begin_op(conn, keys, op)
                conn.execute(q.BULK_STAGE)
                found.execute(q.BULK_LOCKED_ROWS, (keys,))
            now = self._op_now(op)
            existing: dict[int, Record] = {}
            changes: builtins.list[Change] = []

            def plan(part: range) -> builtins.list[tuple[Any, ...]]:
                """Plan one part; the COPY rows of its real changes."""
                # Rows come in key order, at most one per key: once as many rows as keys up to
                # the part's end are read, every row of the part is (numbered from 1).
                for number, record in found.fetchmany(len(part)):
                    existing[number - 1] = record
                planned = [self._plan(existing.get(i), unique[i], now, who, op) for i in part]
                changes.extend(planned)
                return [q.bulk_row(c.item, c.event) for c in planned if c.event is not None]

            parts = bulk_parts(len(unique))
            rows = plan(parts[0])
            wrote = False
            with conn.cursor() as cur:
                for n in range(len(parts)):
                    if rows:
                        with cur.copy(q.BULK_COPY) as copy:
                            for row in rows:
                                copy.write_row(row)
                    with conn.pipeline():
                        if rows:
                            wrote = True
                            cur.execute(q.BULK_MERGE)
                            cur.execute(q.BULK_CLEAR)
                        rows = plan(parts[n + 1]) if n + 1 < len(parts) else []
            if op is not None and (wrote or op.always_record):
                conn.execute(q.RECORD_OP, (op.op_id, op.kind, "applied", self.clock.now()))
        return changes

    def _op_now(self, op: OpContext | None) -> datetime:
        """A replayed op keeps the time it was accepted at; a live call takes the clock's."""
        return op.now if op is not None and op.now is not None else self.clock.now()

    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "",
                   on_behalf_of: str | None = None, op: OpContext | None = None) -> WriteResult:
        return self._change_row(item_id, lambda row, now: plan_status(
            row, status, now=now, actor=actor, message=message, on_behalf_of=on_behalf_of), op)

    def set_owner(self, item_id: str, owner: str, *, actor: str, message: str = "",
                  on_behalf_of: str | None = None, op: OpContext | None = None) -> WriteResult:
        return self._change_row(item_id, lambda row, now: plan_owner(
            row, owner, now=now, actor=actor, message=message, on_behalf_of=on_behalf_of), op)

    def set_due_date(self, item_id: str, due_date: date | None, *, actor: str, message: str = "",
                     on_behalf_of: str | None = None, op: OpContext | None = None) -> WriteResult:
        return self._change_row(item_id, lambda row, now: plan_due_date(
            row, due_date, now=now, actor=actor, message=message, on_behalf_of=on_behalf_of), op)

    def revise(self, item_id: str, revision: Revision, *, actor: str, on_behalf_of: str | None = None,
               op: OpContext | None = None) -> WriteResult:
        return self._change_row(item_id, lambda row, now: plan_revision(
            row, revision, now=now, actor=actor, on_behalf_of=on_behalf_of), op)

    def _change_row(self, item_id: str, planner: Callable[[Record, datetime], Change],
                    op: OpContext | None) -> WriteResult:
        """One item's change (status, owner, due date, a revision) under its row lock: planned on the
        current row, written with its event in one transaction."""
        def work() -> WriteResult:
            with self._db.tx() as conn:
                self.begin_op(conn, [], op)
                row = _locked_row(conn, item_id, "FOR UPDATE")
                change = planner(row, self._op_now(op))
                if change.event is not None:
                    self.write_change(conn, [change], [change.event], op)
            return _result(change)

        return retrying(work)

    def add_comment(self, item_id: str, message: str, *, actor: str, on_behalf_of: str | None = None,
                    op: OpContext | None = None) -> Record:
        return self._add_event(item_id, lambda row, now: plan_comment(
            row, message, now=now, actor=actor, on_behalf_of=on_behalf_of), op)

    def add_note(self, item_id: str, kind: EventType, message: str, meta: Record, *, actor: str,
                 on_behalf_of: str | None = None, op: OpContext | None = None) -> Record:
        return self._add_event(item_id, lambda row, now: plan_note(
            row, kind, message, meta, now=now, actor=actor, on_behalf_of=on_behalf_of), op)

    def _add_event(self, item_id: str, planner: Callable[[Record, datetime], Record],
                   op: OpContext | None) -> Record:
        def work() -> Record:
            with self._db.tx() as conn:
                self.begin_op(conn, [], op)
                # KEY SHARE: a concurrent cleanup cannot delete the item under the new event.
                row = _locked_row(conn, item_id, "FOR KEY SHARE")
                event = planner(row, self._op_now(op))
                self.write_change(conn, [], [event], op)
            return event

        return retrying(work)

    def cleanup(self, retention_days: int) -> int:
        """Expired closed items, except those a writer holds right now (``q.CLEANUP``)."""
        cutoff = parse_utc(cleanup_cutoff(self.clock, retention_days))
        ops_cutoff = self.clock.now() - timedelta(days=max(retention_days, APPLIED_OPS_MIN_DAYS))

        def work() -> int:
            with self._db.conn() as conn, conn.transaction():  # not pipelined: rowcount is needed
                removed = conn.execute(q.CLEANUP, (cutoff,)).rowcount
                if removed > 0:  # the removed items counted in stored trend weeks
                    conn.execute(pg_trend_rollup.BUMP_GENERATION)
                conn.execute(q.PRUNE_OPS, (ops_cutoff,))
            return max(removed, 0)

        return retrying(work)

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> AbstractContextManager[Conn]:
        """One pipelined transaction on the pool (for the journal's replay, ``fallback_journal``)."""
        return self._db.tx()


def _keep_id(change: Change, item_id: str | None) -> Change:
    """A created item keeps the id the fallback gave it (clients saw that id)."""
    if change.action != "created" or item_id is None or change.event is None:
        return change
    return Change("created", {**change.item, "id": item_id}, {**change.event, "item_id": item_id})


def _result(change: Change) -> WriteResult:
    return WriteResult(change.action, change.item, change.event)


def _locked_row(conn: Conn, item_id: str, lock: str) -> Record:
    """The item's row under ``lock`` (a fixed clause, never user input), or NotFound."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q.BY_ID + " " + lock, (item_id,)).fetchone()
    if row is None:
        raise NotFound(f"no backlog item {item_id}", id=item_id)
    return row
