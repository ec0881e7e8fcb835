"""Postgres backend for signals and risk snapshots (psycopg 3 with a small connection pool).

Tables come from migration step 2 (``stores/migrations/0002_signals_and_risk_snapshots.sql``,
applied by ``ops/scripts/migrate_backlog_postgres.py``); this store never creates them, so a missing
schema is one clear error that says to run the migration.

Upserts read the stored versions of the batch's keys ``FOR UPDATE``, plan with the same
``plan_upsert`` as the other backends (so "unchanged" means the same on all of them), and
write only real changes with ``INSERT … ON CONFLICT`` — also safe when two writers race on a
key neither has seen. Writes are retried like the backlog's (``pg_conn.retrying``: a transaction
rolled back for a deadlock or a serialization failure runs again); connection trouble is
``StoreUnavailable`` (the Auto store falls back on it), and a server that answers but refuses is
``StoreUnavailable`` with ``reason="transient"`` (no fallback: the replay would meet the same refusal).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.router.errors import StoreUnavailable
from services.router.signals.models import AnySignal, parse_signal
from services.router.signals.store import RiskSnapshot, UpsertOutcome, plan_snapshots, plan_upsert
from services.router.stores.pg_conn import TRANSIENT, retrying

UPSERT_SIGNAL = """
INSERT INTO signals (kind, id, env, service, occurred_at, data, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, now())
ON CONFLICT (kind, id) DO UPDATE SET env = EXCLUDED.env, service = EXCLUDED.service,
    occurred_at = EXCLUDED.occurred_at, data = EXCLUDED.data, updated_at = now()
"""
UPSERT_SNAPSHOT = """
INSERT INTO risk_snapshots (env, service, slot, score, band, parts, computed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (env, service, slot) DO UPDATE SET score = EXCLUDED.score, band = EXCLUDED.band,
    parts = EXCLUDED.parts, computed_at = EXCLUDED.computed_at
"""
SNAPSHOT_COLUMNS = "env, service, slot, score, band, parts, computed_at"
SCHEMA_MISSING = "signals schema missing: run ops/scripts/migrate_backlog_postgres.py"


class PostgresSignalStore:
    backend = "postgres"

    def __init__(self, dsn: str, *, connect_timeout_seconds: float = 3.0, max_size: int = 4,
                 lazy: bool = False) -> None:
        """Connects now, or with ``lazy`` on the first call (a CLI command that never touches
        signals then opens no pool)."""
        # ``check``: the pool outlives outages, and a restarted server leaves its connections dead;
        # unchecked, the first call after one (the replay of what the outage journaled) would fail.
        self._pool = ConnectionPool(
            dsn, min_size=1, max_size=max_size, open=False, name="signal-store",
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(connect_timeout_seconds))},
        )
        self._timeout = connect_timeout_seconds
        self._connected = False
        self._connect_lock = threading.Lock()
        if not lazy:
            self.connect()

    def connect(self) -> None:
        """Open the pool and check the schema (once); ``StoreUnavailable`` when either fails."""
        with self._connect_lock:
            if self._connected:
                return
            try:
                self._pool.open(wait=True, timeout=self._timeout)
            except Exception as exc:
                self._pool.close()
                raise StoreUnavailable("cannot reach Postgres for the signal store") from exc
            with self._pool.connection() as conn:
                row = conn.execute(
                    "SELECT to_regclass('signals') IS NOT NULL AND to_regclass('risk_snapshots') IS NOT NULL"
                ).fetchone()
            if not row or not row[0]:
                self._pool.close()
                raise StoreUnavailable(SCHEMA_MISSING)
            self._connected = True

    # -- signals -------------------------------------------------------------------------
    def upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool = False) -> UpsertOutcome:
        if not signals:
            return UpsertOutcome()
        return retrying(lambda: self._upsert_many(signals, dry_run=dry_run))

    def _upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool) -> UpsertOutcome:
        kinds = [s.kind_name for s in signals]
        ids = [s.id for s in signals]
        lock = sql.SQL("") if dry_run else sql.SQL(" FOR UPDATE")
        query = sql.SQL(
            "SELECT data FROM signals WHERE (kind, id) IN "
            "(SELECT k, i FROM unnest({kinds}::text[], {ids}::text[]) AS t(k, i)) ORDER BY kind, id{lock}"
        ).format(kinds=sql.Placeholder("kinds"), ids=sql.Placeholder("ids"), lock=lock)
        with self._transaction() as conn:
            rows = conn.execute(query, {"kinds": kinds, "ids": ids}).fetchall()
            existing = {s.key: s for s in (parse_signal(r[0]) for r in rows)}
            writes, outcome = plan_upsert(existing, signals)
            if writes and not dry_run:
                with conn.cursor() as cur:
                    cur.executemany(UPSERT_SIGNAL, [
                        (s.kind_name, s.id, s.env, s.service, s.occurred_at, Jsonb(s.record())) for s in writes
                    ])
        return outcome

    def query(
        self, *, env: str | None = None, service: str | None = None, kinds: Iterable[str] | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AnySignal]:
        conditions, params = filters(env=env, service=service, since=since, until=until, time_column="occurred_at")
        if kinds is not None:
            conditions.append(sql.SQL("kind = ANY({})").format(sql.Placeholder("kinds")))
            params["kinds"] = sorted(set(kinds))
        query = sql.SQL("SELECT data FROM signals{} ORDER BY occurred_at, kind, id").format(where(conditions))
        with self._transaction() as conn:
            rows = conn.execute(query, params).fetchall()
        return [parse_signal(r[0]) for r in rows]

    def services(self, env: str | None = None) -> list[tuple[str, str]]:
        conditions, params = filters(env=env)
        query = sql.SQL("SELECT DISTINCT env, service FROM signals{} ORDER BY env, service").format(where(conditions))
        with self._transaction() as conn:
            return [(r[0], r[1]) for r in conn.execute(query, params).fetchall()]

    # -- snapshots -----------------------------------------------------------------------
    def put_snapshots(self, snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False) -> int:
        keys = list(dict.fromkeys(s.key for s in snapshots))
        if not keys:
            return 0
        return retrying(lambda: self._put_snapshots(keys, snapshots, keep_newer=keep_newer))

    def _put_snapshots(self, keys: list[tuple[str, str, datetime]], snapshots: Sequence[RiskSnapshot], *,
                       keep_newer: bool) -> int:
        envs, services, slots = zip(*keys, strict=True)
        query = (
            f"SELECT {SNAPSHOT_COLUMNS} FROM risk_snapshots WHERE (env, service, slot) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[])) FOR UPDATE"
        )
        with self._transaction() as conn:
            rows = conn.execute(query, (list(envs), list(services), list(slots))).fetchall()
            existing = {s.key: s for s in map(snapshot_of, rows)}
            writes = plan_snapshots(existing, snapshots, keep_newer=keep_newer)
            if writes:
                with conn.cursor() as cur:
                    cur.executemany(UPSERT_SNAPSHOT, [
                        (s.env, s.service, s.slot, s.score, s.band, Jsonb(s.parts), s.computed_at) for s in writes
                    ])
        return len(writes)

    def snapshots(
        self, *, env: str | None = None, service: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[RiskSnapshot]:
        conditions, params = filters(env=env, service=service, since=since, until=until, time_column="slot")
        query = sql.SQL("SELECT {} FROM risk_snapshots{} ORDER BY env, service, slot").format(
            sql.SQL(SNAPSHOT_COLUMNS), where(conditions))
        with self._transaction() as conn:
            return [snapshot_of(r) for r in conn.execute(query, params).fetchall()]

    def count_snapshots_before(self, cutoff: datetime) -> int:
        with self._transaction() as conn:
            row = conn.execute("SELECT count(*) FROM risk_snapshots WHERE slot < %s", (cutoff,)).fetchone()
        return int(row[0]) if row else 0

    def delete_snapshots_before(self, cutoff: datetime) -> int:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM risk_snapshots WHERE slot < %s", (cutoff,)).rowcount

    def close(self) -> None:
        self._pool.close()

    # -- helpers -------------------------------------------------------------------------
    def _transaction(self) -> _Transaction:
        if not self._connected:
            self.connect()
        return _Transaction(self._pool)


class _Transaction:
    """A pooled connection inside one transaction; driver errors become ``StoreUnavailable``."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._cm: Any = None

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            self._cm = self._pool.connection()
            conn: psycopg.Connection[Any] = self._cm.__enter__()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"signal store: {type(exc).__name__}") from exc
        except Exception as exc:  # pool timeout
            raise StoreUnavailable("signal store: no database connection available") from exc
        return conn

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            self._cm.__exit__(kind, exc, tb)  # commits, or rolls back on an exception
        except psycopg.Error as err:
            raise unavailable(err) from err
        if isinstance(exc, psycopg.Error):
            raise unavailable(exc) from exc


def unavailable(exc: psycopg.Error) -> StoreUnavailable:
    """Connection trouble is an outage; any other refusal (a rolled-back transaction included)
    comes from a server that is up."""
    refused = isinstance(exc, psycopg.errors.TransactionRollback | psycopg.errors.OutOfMemory)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not refused:
        return StoreUnavailable(f"signal store: {type(exc).__name__}")
    return StoreUnavailable(f"signal store: {type(exc).__name__}", reason=TRANSIENT)


def filters(
    *, env: str | None = None, service: str | None = None, since: datetime | None = None,
    until: datetime | None = None, time_column: str = "occurred_at",
) -> tuple[list[sql.Composable], dict[str, Any]]:
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}
    column = sql.Identifier(time_column)
    for name, value, template in (
        ("env", env, "env = {}"), ("service", service, "service = {}"),
        ("since", since, "{col} >= {}"), ("until", until, "{col} <= {}"),
    ):
        if value is not None:
            conditions.append(sql.SQL(template).format(sql.Placeholder(name), col=column))
            params[name] = value
    return conditions, params


def where(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


def snapshot_of(row: Sequence[Any]) -> RiskSnapshot:
    env, service, slot, score, band, parts, computed_at = row
    return RiskSnapshot(env=env, service=service, slot=slot, score=score, band=band, parts=parts,
                        computed_at=computed_at)
