"""Connection plumbing of the Postgres backlog store: the pool, transactions, errors and retries.

- The pool pings a connection that sat idle before handing it out (a restarted server leaves
  its connections dead), and trusts one used within the last second (a round trip saved per call).
- Driver errors become the product's errors here, once: connection trouble is
  ``StoreUnavailable`` (the Auto store falls back on it), a missing table says to run the
  migration, and a server that answers but refuses this transaction for now (out of memory,
  conflicts still there after the retries) is ``StoreUnavailable`` with ``reason="transient"``:
  the client retries later, and the Auto store does not fall back. Messages carry the DSN only
  as ``redact_dsn`` prints it.
- ``retrying`` runs a whole transaction again when the server rolled it back for a deadlock or a
  serialization failure; the signal store's writes go through the same helper.
"""

from __future__ import annotations

import builtins
import itertools
import logging
import random
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from services.router.dsn import describe_error, redact_dsn
from services.router.errors import BacklogError, StoreUnavailable, ValidationFailed
from services.router.stores.pg_schema import backlog_schema_missing

log = logging.getLogger("backlog_store")

SCHEMA_MISSING = "schema missing: run ops/scripts/migrate_backlog_postgres.py"
CHECK_IDLE_SECONDS = 1.0
# A transaction the server rolled back for a deadlock or a serialization failure is run this many
# times in all before the error reaches the caller (as ``TRANSIENT``).
TX_ATTEMPTS = 4
RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
# Postgres is there but cannot run this transaction now: not an outage, so no fallback.
TRANSIENT = "transient"
Conn = psycopg.Connection[Any]
R = TypeVar("R")


def schema_missing() -> StoreUnavailable:
    """Postgres answers but the backlog tables are not there (the migration has not run).

    A plain ``StoreUnavailable`` (503) with ``reason="schema_missing"``, not a subclass: the
    API decides one status per error class, and this is the same condition for a client.
    """
    return StoreUnavailable(SCHEMA_MISSING, reason="schema_missing")


def is_transient(exc: StoreUnavailable) -> bool:
    """A refusal by a server that is up (see ``TRANSIENT``): retry later, no need to fall back.

    Falling back would not help anyway: a write accepted on the fallback is replayed into the
    same server, which refused it for the same reason — and would keep the Auto store degraded.
    """
    return exc.details.get("reason") == TRANSIENT


def retrying(work: Callable[[], R]) -> R:
    """``work`` (one whole transaction: lock, read, plan, write), run again when the server rolled
    it back for a deadlock or a serialization failure.

    Lock order makes these rare, but a database shared with other clients, or one on an older
    schema step, can still produce them; they say nothing about the server's health, so they must
    not reach the Auto store as an outage. Planning again from scratch is what makes a retry safe:
    nothing of the failed attempt was committed.
    """
    for attempt in itertools.count(1):
        try:
            return work()
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if attempt >= TX_ATTEMPTS or not (isinstance(cause, psycopg.Error) and cause.sqlstate in RETRY_SQLSTATES):
                raise
            log.info("Postgres rolled the transaction back (%s, attempt %d of %d); running it again",
                     cause.sqlstate, attempt, TX_ATTEMPTS)
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # jitter: two retried writers drift apart
    raise AssertionError("unreachable")


def probe(dsn: str, timeout: float) -> str | None:
    """Why Postgres cannot serve the backlog right now, or None when it can (connect + schema)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(2, round(timeout)), autocommit=True) as conn:
            missing = backlog_schema_missing(conn)
    except psycopg.Error as exc:
        return f"Postgres unreachable at {redact_dsn(dsn)}: {describe_error(exc, dsn)}"
    except Exception as exc:  # malformed DSN and the like: still never echo the DSN
        return f"Postgres unusable at {redact_dsn(dsn)}: {describe_error(exc, dsn)}"
    return SCHEMA_MISSING if missing else None


def _configure(conn: Conn) -> None:
    set_json_loads(orjson.loads, conn)
    # ``conn.transaction()`` begins READ COMMITTED even where the database's default is stricter:
    # the store's writers read under locks, and need the rows as they are once the lock is
    # granted, not as a snapshot taken before it (REPEATABLE READ would fail them with 40001).
    conn.isolation_level = IsolationLevel.READ_COMMITTED


class PgConnections:
    """The backlog store's pool; refuses to open on a server that is down or not migrated."""

    def __init__(self, dsn: str, *, pool_min: int = 1, pool_max: int = 4, connect_timeout: float = 3.0,
                 on_connect: Callable[[Conn], None] | None = None) -> None:
        self._dsn = dsn
        self.dsn_redacted = redact_dsn(dsn)
        problem = probe(dsn, connect_timeout)
        if problem == SCHEMA_MISSING:
            raise schema_missing()
        if problem is not None:
            raise StoreUnavailable(problem)

        def configure(conn: Conn) -> None:
            _configure(conn)
            if on_connect is not None:
                on_connect(conn)

        self._last_used: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._pool = ConnectionPool(
            dsn, min_size=pool_min, max_size=pool_max, open=False, name="backlog-store",
            timeout=connect_timeout, check=self._check, reset=self._returned, configure=configure,
            kwargs={"autocommit": True, "connect_timeout": max(2, round(connect_timeout)),
                    "application_name": "backlog-bridge"},
        )
        try:
            self._pool.open(wait=True, timeout=max(connect_timeout, 1.0))
        except Exception as exc:
            self._pool.close()
            raise StoreUnavailable(f"Postgres unreachable at {self.dsn_redacted}: "
                                   f"{describe_error(exc, dsn)}") from exc

    def _check(self, conn: Conn) -> None:
        """Ping a connection that sat idle (a restarted server left it dead) before handing it
        out; one used within the last second is trusted, saving a round trip per call."""
        if time.monotonic() - self._last_used.get(conn, 0.0) > CHECK_IDLE_SECONDS:
            ConnectionPool.check_connection(conn)

    def _returned(self, conn: Conn) -> None:
        self._last_used[conn] = time.monotonic()

    @contextmanager
    def conn(self) -> Iterator[Conn]:
        """A pooled (autocommit) connection; driver trouble becomes ``StoreUnavailable``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except BacklogError:
            raise
        except psycopg.errors.UndefinedTable as exc:
            raise schema_missing() from exc
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                psycopg.errors.OutOfMemory) as exc:
            raise StoreUnavailable(f"Postgres refused the transaction for now ({self.dsn_redacted}): "
                                   f"{describe_error(exc, self._dsn)}", reason=TRANSIENT) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(f"Postgres unavailable ({self.dsn_redacted}): "
                                   f"{describe_error(exc, self._dsn)}") from exc
        except psycopg.DataError as exc:
            raise ValidationFailed(f"value cannot be stored: {describe_error(exc, self._dsn)}") from exc

    @contextmanager
    def tx(self) -> Iterator[Conn]:
        """One pipelined transaction: statements queue up and travel together until a fetch.

        BEGIN and COMMIT are queued like any statement (``conn.transaction()`` would wait for
        each), so a write costs two round trips: lock + read, then write + commit. READ
        COMMITTED explicitly, as in ``_configure``.
        """
        with self.conn() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    yield conn
                    conn.execute("COMMIT")
            except BaseException:
                if conn.pgconn.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                    with suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise

    def read(self, sql: str, params: Any = None, *, prepare: bool | None = None) -> builtins.list[dict[str, Any]]:
        """A single-statement read: one round trip on an autocommit connection. ``prepare`` as
        psycopg takes it (None: prepared once run 5 times on the connection; False: never)."""
        with self.conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, params, prepare=prepare).fetchall()

    @property
    def dsn(self) -> str:
        return self._dsn

    def stats(self) -> dict[str, int]:
        stats = self._pool.get_stats()
        return {"pool_size": stats.get("pool_size", 0), "pool_available": stats.get("pool_available", 0)}

    def close(self) -> None:
        self._pool.close()
