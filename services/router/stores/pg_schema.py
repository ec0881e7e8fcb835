"""The Postgres schema as ordered, versioned migration steps (RUNBOOK §2, DESIGN §8).

Shared by ``ops/scripts/migrate_backlog_postgres.py``, the stores (which only check that the
schema is there) and the tests, so there is exactly one definition of every table and index.

- Every statement is ``CREATE … IF NOT EXISTS``: applying is idempotent, and re-applying also
  restores an object someone dropped by hand.
- ``schema_migrations`` records which steps were applied (version, name, applied_at).
- One advisory lock serializes concurrent migrators; the whole apply is one transaction
  (Postgres DDL is transactional), so a failure leaves the database as it was.
- Adding a table is one new entry at the end of ``STEPS``. A step's SQL is loaded when used,
  so a step can live beside the code that owns its tables.

Imports nothing outside the standard library at module level: the migration script loads this
module before it knows whether psycopg is installed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MIGRATIONS_TABLE = "schema_migrations"
MIGRATIONS_DDL = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
# pg_advisory_xact_lock key for migrators ("backlog-bridge/migrate", as an int8).
MIGRATION_LOCK_KEY = 0x6262_6D69_6772_6174

ACTIVE = "('open', 'in_progress', 'blocked')"

BACKLOG_DDL: tuple[str, ...] = (
    # COLLATE "C" on the columns we order or page by: byte order, as Python compares strings,
    # so keyset cursors and tie-breaks agree with the in-memory backends.
    """CREATE TABLE IF NOT EXISTS backlog_items (
    id            text COLLATE "C" PRIMARY KEY,
    env           text COLLATE "C" NOT NULL,
    service       text COLLATE "C" NOT NULL,
    category      text COLLATE "C" NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    priority      text COLLATE "C" NOT NULL CHECK (priority IN ('P0', 'P1', 'P2', 'P3')),
    status        text COLLATE "C" NOT NULL
                  CHECK (status IN ('open', 'in_progress', 'blocked', 'done', 'canceled')),
    owner         text COLLATE "C" NOT NULL,
    due_date      date,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    source        text NOT NULL,
    dedupe_key    text COLLATE "C" NOT NULL,
    evidence_refs jsonb NOT NULL DEFAULT '[]'::jsonb,
    tags          jsonb NOT NULL DEFAULT '[]'::jsonb,
    meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
    rev           integer NOT NULL DEFAULT 1,
    CONSTRAINT backlog_items_dedupe_key_key UNIQUE (dedupe_key)
)""",
    # seq keeps write order (event ids are only ordered within one process).
    """CREATE TABLE IF NOT EXISTS backlog_events (
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    id       text COLLATE "C" PRIMARY KEY,
    item_id  text COLLATE "C" NOT NULL REFERENCES backlog_items (id) ON DELETE CASCADE,
    ts       timestamptz NOT NULL,
    type     text NOT NULL,
    actor    text NOT NULL,
    message  text NOT NULL DEFAULT '',
    meta     jsonb NOT NULL DEFAULT '{}'::jsonb,
    item_rev integer
)""",
    # Operations of the Auto store already applied here (same transaction as their effect), so a
    # replay of the JSONL fallback's journal applies each operation exactly once.
    """CREATE TABLE IF NOT EXISTS backlog_applied_ops (
    op_id      text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL,
    outcome    text NOT NULL,
    applied_at timestamptz NOT NULL
)""",
    # The runbook's indexes: env+status, service, due_date, owner, category, item_id, ts.
    "CREATE INDEX IF NOT EXISTS backlog_items_env_status_idx ON backlog_items (env, status)",
    "CREATE INDEX IF NOT EXISTS backlog_items_service_idx ON backlog_items (service)",
    "CREATE INDEX IF NOT EXISTS backlog_items_due_date_idx ON backlog_items (due_date)",
    "CREATE INDEX IF NOT EXISTS backlog_items_owner_idx ON backlog_items (owner)",
    "CREATE INDEX IF NOT EXISTS backlog_items_category_idx ON backlog_items (category)",
    "CREATE INDEX IF NOT EXISTS backlog_events_item_id_idx ON backlog_events (item_id, seq)",
    "CREATE INDEX IF NOT EXISTS backlog_events_ts_idx ON backlog_events (ts)",
    # The dashboard's: counts by status/priority, overdue and top services over active items.
    "CREATE INDEX IF NOT EXISTS backlog_items_env_status_priority_idx ON backlog_items (env, status, priority)",
    f"CREATE INDEX IF NOT EXISTS backlog_items_active_due_idx ON backlog_items (env, due_date) "
    f"WHERE status IN {ACTIVE}",
    f"CREATE INDEX IF NOT EXISTS backlog_items_active_service_idx ON backlog_items (env, service) "
    f"WHERE status IN {ACTIVE}",
    # Retention: cleanup finds expired closed items without scanning the open ones.
    "CREATE INDEX IF NOT EXISTS backlog_items_closed_updated_idx ON backlog_items (updated_at) "
    "WHERE status IN ('done', 'canceled')",
    "CREATE INDEX IF NOT EXISTS backlog_applied_ops_applied_at_idx ON backlog_applied_ops (applied_at)",
)

BACKLOG_TABLES = ("backlog_items", "backlog_events", "backlog_applied_ops", "backlog_counts")

# Step 4: the dashboard's numbers, kept by statement triggers so reading them is O(1) in rows.
# One row per (env, kind, a, b): kind 's' = (status, priority) of every item, 'v' = (service, '')
# of active items, 'd' = (due date as YYYY-MM-DD, '') of active items with a due date. Writers add
# deltas with INSERT … ON CONFLICT DO UPDATE (n = n + delta), keys in sorted order; rows that
# reach 0 are left in place and ignored by readers.
_COUNT_ROWS = f"""
    SELECT env, 's'::text AS kind, status AS a, priority AS b, {{sign}} AS d FROM {{rows}}
    UNION ALL
    SELECT env, 'v', service, '', {{sign}} FROM {{rows}} WHERE status IN {ACTIVE}
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', {{sign}} FROM {{rows}}
        WHERE status IN {ACTIVE} AND due_date IS NOT NULL"""


def _apply_counts(sources: str) -> str:
    return f"""INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM ({sources}) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n"""


def _per_operation(write: Callable[[str], str]) -> str:
    """The count triggers' INSERT/UPDATE/DELETE branches: ``write`` of the changed rows' signed
    counts (step 4 applies them at once, step 5 defers them to COMMIT); TRUNCATE is left to the
    caller's ``ELSE``."""
    return f"""IF TG_OP = 'INSERT' THEN
        {write(_COUNT_ROWS.format(sign=1, rows='new_rows'))};
    ELSIF TG_OP = 'UPDATE' THEN
        {write(_COUNT_ROWS.format(sign=1, rows='new_rows') + ' UNION ALL '
               + _COUNT_ROWS.format(sign=-1, rows='old_rows'))};
    ELSIF TG_OP = 'DELETE' THEN
        {write(_COUNT_ROWS.format(sign=-1, rows='old_rows'))};"""


COUNTS_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS backlog_counts (
    env  text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    a    text COLLATE "C" NOT NULL,
    b    text COLLATE "C" NOT NULL,
    n    bigint NOT NULL,
    PRIMARY KEY (env, kind, a, b)
)""",
    # Top services of one env: the first rows of an index scan.
    "CREATE INDEX IF NOT EXISTS backlog_counts_top_idx ON backlog_counts (env, kind, n DESC, a)",
    # The overdue list in its exact order (priorities P0..P3 sort as text): an index scan that
    # stops after the listed rows, however many items share the oldest due dates.
    f"CREATE INDEX IF NOT EXISTS backlog_items_active_due_rank_idx ON backlog_items (env, due_date, priority, id) "
    f"WHERE status IN {ACTIVE}",
    f"""CREATE OR REPLACE FUNCTION backlog_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_per_operation(_apply_counts)}
    ELSE
        DELETE FROM backlog_counts;
    END IF;
    RETURN NULL;
END
$fn$""",
    "DROP TRIGGER IF EXISTS backlog_counts_ins ON backlog_items",
    "CREATE TRIGGER backlog_counts_ins AFTER INSERT ON backlog_items REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger()",
    "DROP TRIGGER IF EXISTS backlog_counts_upd ON backlog_items",
    "CREATE TRIGGER backlog_counts_upd AFTER UPDATE ON backlog_items "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger()",
    "DROP TRIGGER IF EXISTS backlog_counts_del ON backlog_items",
    "CREATE TRIGGER backlog_counts_del AFTER DELETE ON backlog_items REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger()",
    "DROP TRIGGER IF EXISTS backlog_counts_trunc ON backlog_items",
    "CREATE TRIGGER backlog_counts_trunc AFTER TRUNCATE ON backlog_items "
    "FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger()",
    # Backfill when the step is first applied to a populated database (writers wait meanwhile).
    f"""DO $do$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = 4) THEN
        LOCK TABLE backlog_items IN SHARE MODE;
        DELETE FROM backlog_counts;
        {_apply_counts(_COUNT_ROWS.format(sign=1, rows='backlog_items'))};
    END IF;
END $do$""",
)


# Step 5: counters are changed once per transaction, at COMMIT, in one sorted statement.
# Step 4's triggers changed them statement by statement; each statement's rows were sorted, but
# a transaction runs several (a batch's parts, a small batch's rows), so two writers could lock
# counter rows in opposite orders across statements: "deadlock detected" between writers of
# different keys. Now each statement only records its deltas in backlog_counts_pending (rows of
# its own transaction, tagged with its id); the first of them also adds a "flush" marker row,
# whose deferred constraint trigger runs at COMMIT and moves the transaction's deltas into
# backlog_counts in one INSERT … ORDER BY (env, kind, a, b). Every transaction thus locks its
# counter rows in one global order, as its last act. Nothing to backfill: the counters are
# right, and a transaction still running on step 4's trigger has counted its own rows already.
# UNLOGGED: a pending row lives within its transaction; after a crash there is nothing to keep.
_TX = "pg_current_xact_id()"


def _defer_counts(sources: str) -> str:
    return f"""INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT {_TX}, env, kind, a, b, sum(d) FROM ({sources}) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0"""


COUNTS_AT_COMMIT_DDL: tuple[str, ...] = (
    """CREATE UNLOGGED TABLE IF NOT EXISTS backlog_counts_pending (
    tx    xid8    NOT NULL,
    env   text COLLATE "C" NOT NULL,
    kind  text COLLATE "C" NOT NULL,
    a     text COLLATE "C" NOT NULL,
    b     text COLLATE "C" NOT NULL,
    n     bigint  NOT NULL,
    flush boolean NOT NULL DEFAULT false
)""",
    "CREATE INDEX IF NOT EXISTS backlog_counts_pending_tx_idx ON backlog_counts_pending (tx)",
    # One marker per transaction (ON CONFLICT DO NOTHING queues no trigger): one flush per COMMIT.
    "CREATE UNIQUE INDEX IF NOT EXISTS backlog_counts_pending_flush_idx ON backlog_counts_pending (tx) WHERE flush",
    # Replaces step 4's function (step 4 re-creates its own version first on every migrate run,
    # then this one replaces it in the same transaction); step 4's triggers call it.
    f"""CREATE OR REPLACE FUNCTION backlog_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {_per_operation(_defer_counts)}
    ELSE
        DELETE FROM backlog_counts;
        DELETE FROM backlog_counts_pending WHERE tx = {_TX} AND NOT flush;
        RETURN NULL;
    END IF;
    IF FOUND THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n, flush) VALUES ({_TX}, '', '', '', '', 0, true)
            ON CONFLICT (tx) WHERE flush DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$""",
    f"""CREATE OR REPLACE FUNCTION backlog_counts_flush() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    WITH gone AS (DELETE FROM backlog_counts_pending WHERE tx = NEW.tx RETURNING env, kind, a, b, n)
    {_apply_counts("SELECT env, kind, a, b, n AS d FROM gone")};
    RETURN NULL;
END
$fn$""",
    "DROP TRIGGER IF EXISTS backlog_counts_flush ON backlog_counts_pending",
    "CREATE CONSTRAINT TRIGGER backlog_counts_flush AFTER INSERT ON backlog_counts_pending "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.flush) EXECUTE FUNCTION backlog_counts_flush()",
)


def _split(script: str) -> tuple[str, ...]:
    """A multi-statement DDL string as single statements (DDL here has no ';' in literals)."""
    return tuple(s.strip() for s in script.split(";") if s.strip())


def _from(module: str, attribute: str) -> Callable[[], tuple[str, ...]]:
    """SQL that lives beside the code owning the tables, imported only when the step is used."""

    def load() -> tuple[str, ...]:
        value = getattr(importlib.import_module(module), attribute)
        return _split(value) if isinstance(value, str) else tuple(value)

    return load


@dataclass(frozen=True, slots=True)
class Step:
    version: int
    name: str
    load: Callable[[], Sequence[str]]

    def statements(self) -> tuple[str, ...]:
        return tuple(self.load())


STEPS: tuple[Step, ...] = (
    Step(1, "backlog_items_and_events", lambda: BACKLOG_DDL),
    Step(2, "signals_and_risk_snapshots", _from("services.router.signals.pg_ddl", "SIGNALS_DDL")),
    Step(3, "job_runs", _from("services.router.jobs.pg_ledger", "JOB_RUNS_DDL")),
    Step(4, "backlog_dashboard_counts", lambda: COUNTS_DDL),
    Step(5, "backlog_counts_at_commit", lambda: COUNTS_AT_COMMIT_DDL),
)
LATEST_VERSION = STEPS[-1].version

_OBJECT = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+|UNLOGGED\s+)?(TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+\"?([\w.]+)\"?", re.I)


def object_of(statement: str) -> tuple[str, str] | None:
    """(kind, name) a statement creates, e.g. ("table", "backlog_items")."""
    match = _OBJECT.match(statement)
    return (match.group(1).lower(), match.group(2)) if match else None


class Connection(Protocol):
    """The part of ``psycopg.Connection`` used here (kept structural: no psycopg import)."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...
    def transaction(self) -> Any: ...


@dataclass(slots=True)
class Plan:
    """What an apply would do / did: objects created vs already there, versions recorded."""

    created: list[tuple[str, str]] = field(default_factory=list)
    existing: list[tuple[str, str]] = field(default_factory=list)
    versions: list[Step] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.created and not self.versions


def _exists(conn: Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def applied_versions(conn: Connection) -> set[int]:
    if not _exists(conn, MIGRATIONS_TABLE):
        return set()
    return {int(r[0]) for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}").fetchall()}


def plan(conn: Connection) -> Plan:
    """What ``migrate`` would run on this database, without changing anything."""
    result = Plan()
    applied = applied_versions(conn)
    for statement in (MIGRATIONS_DDL, *(s for step in STEPS for s in step.statements())):
        obj = object_of(statement)
        if obj is not None and _exists(conn, obj[1]):
            result.existing.append(obj)
            continue
        if obj is not None:
            result.created.append(obj)
        result.sql.append(statement)
    for step in STEPS:
        if step.version not in applied:
            result.versions.append(step)
            result.sql.append(f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ({step.version}, "
                              f"'{step.name}')")
    return result


def migrate(conn: Connection) -> Plan:
    """Apply every step in one transaction under the migration lock; returns what it did.

    Works on an autocommit connection (``transaction()`` opens one) and inside an open one.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        result = plan(conn)
        for statement in result.sql:
            if not statement.startswith(f"INSERT INTO {MIGRATIONS_TABLE}"):
                conn.execute(statement)
        for step in result.versions:
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s) "
                         "ON CONFLICT (version) DO NOTHING", (step.version, step.name))
    return result


def backlog_schema_missing(conn: Connection) -> list[str]:
    """The backlog tables that are not there (empty: the stores can run)."""
    return [t for t in BACKLOG_TABLES if not _exists(conn, t)]
