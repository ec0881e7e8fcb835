"""SQL of the Postgres backlog store, and the conversions between its rows and records.

Rows come back in the canonical record form the other backends use: timestamps formatted by
the server exactly as ``clock.iso_z`` writes them, dates as ``YYYY-MM-DD``, JSON as Python
lists/dicts — so a record read from Postgres compares equal to the one the memory store holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import orjson

from services.router.domain import dashboard as board
from services.router.domain.acceptance import hold
from services.router.domain.changes import RECORD_FIELDS, Record
from services.router.domain.enums import ACTIVE_STATUSES, ALL_PRIORITIES
from services.router.domain.queries import ItemQuery, check_fields, meta_keys
from services.router.domain.sorting import sort_order

TS = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATUSES)) + ")"
# An accepted item's hold (``domain.acceptance.hold``) keeps it from being overdue through that day.
NOT_HELD = "(accepted_hold IS NULL OR accepted_hold < %(today)s)"

# A record's fields, each as the SQL that reads it in canonical form, in record order.
ITEM_FIELDS: dict[str, str] = {
    "id": "id", "env": "env", "service": "service", "category": "category", "title": "title",
    "description": "description", "priority": "priority", "status": "status", "owner": "owner",
    "due_date": "to_char(due_date, 'YYYY-MM-DD') AS due_date",
    "created_at": f"to_char(created_at AT TIME ZONE 'UTC', {TS}) AS created_at",
    "updated_at": f"to_char(updated_at AT TIME ZONE 'UTC', {TS}) AS updated_at",
    "source": "source", "dedupe_key": "dedupe_key", "evidence_refs": "evidence_refs", "tags": "tags",
    "meta": "meta", "accepted": "accepted", "rev": "rev",
}
ITEM_COLUMNS = ", ".join(ITEM_FIELDS.values())
assert tuple(ITEM_FIELDS) == RECORD_FIELDS, "the select list must read every record field"
EVENT_COLUMNS = (
    f"e.id, e.item_id, to_char(e.ts AT TIME ZONE 'UTC', {TS}) AS ts, e.type, e.actor, e.message, e.meta, e.item_rev, "
    "e.on_behalf_of"
)

SELECT_ITEM = f"SELECT {ITEM_COLUMNS} FROM backlog_items"
BY_ID = f"{SELECT_ITEM} WHERE id = %s"
# The keys as a set joined to the unique index: one index probe per key. (``= ANY(array)``
# with thousands of keys is costed as a sequential scan of the table, ~3x slower at 100k rows.)
# Key lists go as binary arrays (``%b``, ``KEYS_PARAM``): psycopg's text form of an array quotes
# and escapes each element, and for a run's 2,600 keys that alone took twice the query itself.
KEYS_PARAM = "%b::text[]"
BY_KEYS = f"{SELECT_ITEM} WHERE dedupe_key IN (SELECT unnest({KEYS_PARAM})) ORDER BY id"

# Both upsert paths set every column from the planned row (the planners decided what changes).
MERGE_SET = """
ON CONFLICT (dedupe_key) DO UPDATE SET
    env = EXCLUDED.env, service = EXCLUDED.service, category = EXCLUDED.category, title = EXCLUDED.title,
    description = EXCLUDED.description, priority = EXCLUDED.priority, status = EXCLUDED.status,
    owner = EXCLUDED.owner, due_date = EXCLUDED.due_date, updated_at = EXCLUDED.updated_at,
    source = EXCLUDED.source, evidence_refs = EXCLUDED.evidence_refs, tags = EXCLUDED.tags,
    meta = EXCLUDED.meta, accepted = EXCLUDED.accepted, accepted_hold = EXCLUDED.accepted_hold, rev = EXCLUDED.rev
"""
UPSERT_ITEM = """
INSERT INTO backlog_items (id, env, service, category, title, description, priority, status, owner, due_date,
    created_at, updated_at, source, dedupe_key, evidence_refs, tags, meta, accepted, accepted_hold, rev)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::date, %s::timestamptz, %s::timestamptz, %s, %s,
    %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb, %s::date, %s)
""" + MERGE_SET
# The bulk path (large batches), one part of the batch at a time: the planned rows — each item
# row with its event — are COPYed into a temp table, then one statement merges the items and
# writes their events (its FK checks run at the end of the statement, after the items are in)
# and the stage is emptied for the next part. Same rows as UPSERT_ITEM and INSERT_EVENT write.
ITEM_COLUMN_NAMES = ("id, env, service, category, title, description, priority, status, owner, due_date, created_at, "
                     "updated_at, source, dedupe_key, evidence_refs, tags, meta, accepted, accepted_hold, rev")
BULK_STAGE = ("CREATE TEMP TABLE backlog_bulk_stage (LIKE backlog_items INCLUDING DEFAULTS, ev_id text, "
              "ev_item_id text, ev_ts timestamptz, ev_type text, ev_actor text, ev_message text, ev_meta jsonb, "
              "ev_item_rev integer, ev_on_behalf_of text) ON COMMIT DROP")
BULK_COPY = (f"COPY backlog_bulk_stage ({ITEM_COLUMN_NAMES}, ev_id, ev_item_id, ev_ts, ev_type, ev_actor, "
             "ev_message, ev_meta, ev_item_rev, ev_on_behalf_of) FROM STDIN")
BULK_MERGE = f"""
WITH merged AS (
    INSERT INTO backlog_items ({ITEM_COLUMN_NAMES}) SELECT {ITEM_COLUMN_NAMES} FROM backlog_bulk_stage
    {MERGE_SET.strip()}
)
INSERT INTO backlog_events (id, item_id, ts, type, actor, message, meta, item_rev, on_behalf_of)
SELECT ev_id, ev_item_id, ev_ts, ev_type, ev_actor, ev_message, ev_meta, ev_item_rev, ev_on_behalf_of """ \
    """FROM backlog_bulk_stage
"""
BULK_CLEAR = "TRUNCATE backlog_bulk_stage"
# The bulk path's locked read. Rows are locked in id order, like every other writer (the small
# path's ``BY_KEYS … ORDER BY id FOR UPDATE``, a status change's single row): locking in the
# batch's order instead deadlocked against any writer taking the same rows in another order.
# A subquery with FOR UPDATE is never flattened into its parent, so the lock order is its own
# ORDER BY whatever join the planner picks; the columns are read there too, so a row a status
# change updated while we waited for it comes back as it is now (EvalPlanQual), not as the
# statement's snapshot had it. Then the rows come back in the order of the keys, numbered from
# 1, so each part of the batch converts only its own rows, when it is planned.
BULK_LOCKED_ROWS = (
    f"WITH k AS MATERIALIZED (SELECT key, n FROM unnest({KEYS_PARAM}) WITH ORDINALITY AS u(key, n)), "
    f"locked AS (SELECT {ITEM_COLUMNS} FROM backlog_items WHERE dedupe_key IN (SELECT key FROM k) "
    "ORDER BY id FOR UPDATE) "
    "SELECT k.n, locked.* FROM locked JOIN k ON k.key = locked.dedupe_key ORDER BY k.n"
)
INSERT_EVENT = """
INSERT INTO backlog_events (id, item_id, ts, type, actor, message, meta, item_rev, on_behalf_of)
VALUES (%s, %s, %s::timestamptz, %s, %s, %s, %s::jsonb, %s, %s)
"""
ACCEPTED_ITEMS = f"{SELECT_ITEM} WHERE accepted IS NOT NULL ORDER BY id"
ACCEPTED_ITEMS_OF_ENV = f"{SELECT_ITEM} WHERE accepted IS NOT NULL AND env = %s ORDER BY id"
EVENTS_OF = (
    f"SELECT i.id AS found, {EVENT_COLUMNS} FROM backlog_items i "
    "LEFT JOIN backlog_events e ON e.item_id = i.id WHERE i.id = %s ORDER BY e.seq"
)

# Advisory locks serialize writers of one dedupe key, including two that both see no row yet
# (FOR UPDATE cannot lock a row that does not exist). Keys are hashed into LOCK_BUCKETS buckets
# and a writer locks the buckets of its keys (``lock_keys``): one lock per key ran the server's
# shared lock table out of memory ("out of shared memory", max_locks_per_transaction x
# max_connections slots for the whole server) from ~20k keys in one batch, or a few concurrent
# batches of 7k. Sorted, so two writers never wait for each other's buckets in a cycle.
LOCK_KEYS = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
OP_APPLIED = "SELECT 1 FROM backlog_applied_ops WHERE op_id = %s"
RECORD_OP = "INSERT INTO backlog_applied_ops (op_id, kind, outcome, applied_at) VALUES (%s, %s, %s, %s)"

# SKIP LOCKED: an expired row a writer holds (it is about to change it, or to add an event under
# it) is left for the next run instead of waited for; cleanup waits for no row lock at all, so
# it cannot deadlock against writers that lock rows in id order.
CLEANUP = ("DELETE FROM backlog_items WHERE id IN (SELECT id FROM backlog_items "
           "WHERE status IN ('done', 'canceled') AND updated_at < %s FOR UPDATE SKIP LOCKED)")
PRUNE_OPS = "DELETE FROM backlog_applied_ops WHERE applied_at < %s"

# Distinct envs by walking the (env, status) index: one probe per env, not a scan of the table.
ENVS = """
WITH RECURSIVE e(env) AS (
    (SELECT env FROM backlog_items ORDER BY env LIMIT 1)
    UNION ALL
    SELECT (SELECT b.env FROM backlog_items b WHERE b.env > e.env ORDER BY b.env LIMIT 1) FROM e
    WHERE e.env IS NOT NULL
)
SELECT env FROM e WHERE env IS NOT NULL
"""

LOCK_PREFIX = b"backlog-bridge/backlog_items/"
# A batch holds at most this many advisory locks, whatever its size: a few large batches at once
# fit in the default lock table (64 x 100 slots) beside everything else. Two small batches
# share a bucket now and then (two 10-key batches: ~10% of the time) and then run one after
# the other, never wrongly together: a key has one bucket. Every process must agree on it.
LOCK_BUCKETS = 1024


def _int8(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


# The int8 advisory-lock key of each bucket (own prefix: no clash with other users of advisory
# locks in the same database).
BUCKET_LOCKS: tuple[int, ...] = tuple(_int8(LOCK_PREFIX + b"bucket/%d" % b) for b in range(LOCK_BUCKETS))


def lock_bucket(key: str) -> int:
    """The bucket of a dedupe key: a stable hash (the same in every process and Python version,
    unlike ``hash()``)."""
    return _int8(LOCK_PREFIX + key.encode()) % LOCK_BUCKETS


def lock_keys(keys: Sequence[str]) -> list[int]:
    """Sorted, distinct advisory-lock keys of the buckets of ``keys`` (at most LOCK_BUCKETS)."""
    return sorted({BUCKET_LOCKS[lock_bucket(k)] for k in keys})


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def item_row(r: Record) -> tuple[Any, ...]:
    accepted = r.get("accepted")
    return (
        r["id"], r["env"], r["service"], r["category"], r["title"], r["description"], r["priority"],
        r["status"], r["owner"], r["due_date"], r["created_at"], r["updated_at"], r["source"], r["dedupe_key"],
        dumps(r["evidence_refs"]), dumps(r["tags"]), dumps(r["meta"]),
        None if accepted is None else dumps(accepted), hold(accepted), r["rev"],
    )


def bulk_row(item: Record, event: Record) -> tuple[Any, ...]:
    """A row of ``BULK_COPY``: the item row, then its event row."""
    return item_row(item) + event_row(event)


def event_row(e: Record) -> tuple[Any, ...]:
    return (e["id"], e["item_id"], e["ts"], e["type"], e["actor"], e["message"], dumps(e["meta"]), e["item_rev"],
            e.get("on_behalf_of"))


def event_record(row: dict[str, Any]) -> Record:
    """An event as every backend returns it: ``on_behalf_of`` only when a person was named."""
    event = {k: row[k] for k in ("id", "item_id", "ts", "type", "actor", "message", "meta", "item_rev")}
    if row.get("on_behalf_of"):
        event["on_behalf_of"] = row["on_behalf_of"]
    return event


def item_columns(fields: Collection[str] | None, sort_field: str = "id") -> str:
    """The select list for records holding ``fields``, ``id`` (the paging cursor) and the sort
    field (a cursor holds its value); None: whole records."""
    if fields is None:
        return ITEM_COLUMNS
    check_fields(fields)
    columns = [sql for name, sql in ITEM_FIELDS.items() if name in ("id", sort_field) or name in fields]
    keys = meta_keys(fields) if "meta" not in fields else []
    if keys:  # ``meta.<key>``: an object of those keys alone (decoding whole metas was most of the read)
        columns.append(" || ".join(f"CASE WHEN meta ? '{k}' THEN jsonb_build_object('{k}', meta -> '{k}') "
                                   "ELSE '{}'::jsonb END" for k in keys) + " AS meta")
    return ", ".join(columns)


# The SQL type of each sort field's cursor value (``domain.sorting``).
SORT_CASTS = {"due_date": "date", "priority": "text", "updated_at": "timestamptz"}


def sort_sql(query: ItemQuery) -> tuple[str, str | None, list[Any]]:
    """``domain.sorting``'s order as ``ORDER BY``, and the keyset condition after the cursor."""
    spec = sort_order(query.sort)
    way = " DESC" if spec.descending else ""
    beyond = "<" if spec.descending else ">"
    if spec.field == "id":
        order = f"id{way}"
    else:
        column = f"backlog_items.{spec.field}"
        order = f"{column}{way}, id{way}" if spec.field != "due_date" else f"({column} IS NULL), {column}{way}, id{way}"
    position = query.position()
    if position is None:
        return order, None, []
    if spec.field == "id":
        return order, f"id {beyond} %s", [position.id]
    column = spec.field
    if position.value is None:  # among the undated, which come last
        return order, f"({column} IS NULL AND id {beyond} %s)", [position.id]
    return (order, f"(({column}, id) {beyond} (%s::{SORT_CASTS[column]}, %s) OR {column} IS NULL)",
            [position.value, position.id])


def list_query(query: ItemQuery, today: Any, fields: Collection[str] | None = None) -> tuple[str, list[Any]]:
    """``ItemQuery.matches_filters`` and ``domain.sorting`` as SQL: the same filters, order and
    keyset cursor; the columns of ``fields`` only, when given (``item_columns``)."""
    where: list[str] = []
    params: list[Any] = []
    for name in ("env", "service", "owner", "category"):
        value = getattr(query, name)
        if value is not None:
            where.append(f"{name} = %s")
            params.append(value)
    for name in ("status", "priority"):
        value = getattr(query, name)
        if value is not None:
            where.append(f"{name} = %s")
            params.append(value.value)
    if query.active is not None:
        where.append(f"status {'' if query.active else 'NOT '}IN {ACTIVE_SQL}")
    if query.overdue is not None:
        overdue = (f"(status IN {ACTIVE_SQL} AND due_date IS NOT NULL AND due_date < %s "
                   "AND (accepted_hold IS NULL OR accepted_hold < %s))")
        where.append(overdue if query.overdue else f"NOT {overdue}")
        params += [today, today]
    if query.q is not None:
        where.append("strpos(lower(title), lower(%s)) > 0")
        params.append(query.q)
    order, keyset, keyset_params = sort_sql(query)
    if keyset is not None:
        where.append(keyset)
        params.extend(keyset_params)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    params.append(query.limit + 1)
    columns = item_columns(fields, sort_order(query.sort).field)
    return f"SELECT {columns} FROM backlog_items{clause} ORDER BY {order} LIMIT %s", params


def overdue_ids_query(env: str | None, priority: str | None) -> str:
    """One row: the overdue total and the first ``limit`` ids in id order."""
    env_and = "env = %(env)s AND " if env is not None else ""
    priority_and = "priority = %(priority)s AND " if priority is not None else ""
    return (
        f"WITH hits AS (SELECT id FROM backlog_items WHERE {env_and}{priority_and}"
        f"status IN {ACTIVE_SQL} AND due_date < %(today)s AND {NOT_HELD}) "
        "SELECT (SELECT count(*) FROM hits) AS n, "
        "ARRAY(SELECT id FROM hits ORDER BY id LIMIT %(limit)s) AS ids"
    )


# The overdue list orders by priority rank; P0..P3 sort the same as text (index order).
assert list(ALL_PRIORITIES) == sorted(ALL_PRIORITIES), "priority ranks must sort as text"


def dashboard_queries(env: str | None) -> tuple[str, str, str, str, str]:
    """Counts by status and priority, overdue count, first overdue items, top services, accepted
    items. The numbers come from ``backlog_counts`` (kept by triggers, schema steps 4, 5 and 7: a
    few rows per env, whatever the number of items); the overdue list from the partial
    ``(env, due_date)`` index; accepted items (few) from their partial index."""
    env_and = "env = %(env)s AND " if env is not None else ""
    overdue = f"{env_and}status IN {ACTIVE_SQL} AND due_date < %(today)s AND {NOT_HELD}"
    return (
        f"SELECT a AS status, b AS priority, sum(n) AS n FROM backlog_counts WHERE {env_and}kind = 's' "
        "GROUP BY a, b HAVING sum(n) > 0",
        f"SELECT coalesce(sum(n), 0) AS n FROM backlog_counts WHERE {env_and}kind = 'd' "
        "AND a < to_char(%(today)s::date, 'YYYY-MM-DD')",
        "SELECT id, env, service, category, priority, status, owner, to_char(due_date, 'YYYY-MM-DD') AS due_date, "
        f"title FROM backlog_items WHERE {overdue} "
        "ORDER BY backlog_items.due_date, backlog_items.priority, id LIMIT %(limit)s",
        # One env: one row per service, read in order from backlog_counts_top_idx.
        "SELECT a AS service, n FROM backlog_counts WHERE env = %(env)s AND kind = 'v' AND n > 0 "
        "ORDER BY n DESC, a LIMIT %(top)s" if env is not None else
        "SELECT a AS service, sum(n) AS n FROM backlog_counts WHERE kind = 'v' "
        "GROUP BY a HAVING sum(n) > 0 ORDER BY n DESC, service LIMIT %(top)s",
        "SELECT id, env, service, category, priority, status, owner, to_char(due_date, 'YYYY-MM-DD') AS due_date, "
        f"title, accepted, count(*) OVER () AS n FROM backlog_items WHERE {env_and}accepted IS NOT NULL "
        f"AND status IN {ACTIVE_SQL} AND (accepted->>'until') COLLATE \"C\" >= %(today_text)s "
        "ORDER BY accepted->>'until' COLLATE \"C\", id LIMIT %(limit)s",
    )


def dashboard_record(env: str | None, now: datetime, counts: list[Record], overdue_count: list[Record],
                     overdue: list[Record], top: list[Record], accepted: list[Record]) -> Record:
    """The dashboard response from the rows of ``dashboard_queries`` (in their order)."""
    status_counts: dict[str, int] = {}
    priority_counts: dict[str, int] = {}
    for row in counts:
        status_counts[row["status"]] = status_counts.get(row["status"], 0) + int(row["n"])
        priority_counts[row["priority"]] = priority_counts.get(row["priority"], 0) + int(row["n"])
    return board.assemble(
        env=env, now=now, total=sum(int(r["n"]) for r in counts), status_counts=status_counts,
        priority_counts=priority_counts, overdue_count=int(overdue_count[0]["n"]),
        overdue=[{f: r[f] for f in board.OVERDUE_FIELDS} for r in overdue],
        top_services=[(r["service"], int(r["n"])) for r in top],
        accepted_count=int(accepted[0]["n"]) if accepted else 0,
        accepted=[{f: r[f] for f in board.ACCEPTED_FIELDS} for r in accepted],
    )
