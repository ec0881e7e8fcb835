"""The Postgres run ledger: several scheduler processes, each job slot run exactly once.

Protocol for one slot (``claim``):

1. On a dedicated connection, ``BEGIN`` and ``pg_try_advisory_xact_lock(key(job, slot))``. Busy →
   another process is running the slot: leave it.
2. Still in that transaction, read the slot's ``job_runs`` record. Finished (succeeded, failed,
   skipped) → leave it. Absent, or ``running`` while we hold the lock → ours: a ``running``
   record whose lock was free is stale (its process died, its connection closed, the lock went
   with it), so the slot runs again.
3. Mark the record ``running`` (attempts + 1, host, pid) on a second, autocommit connection, so
   ``backlog jobs history`` on any host shows the run in progress.
4. Run the job with the lock transaction still open; write the outcome in that transaction and
   ``COMMIT``: the final status and the lock's release become visible together.

Skipping a slot takes the same lock, so a late process never marks skipped a slot another
process is running. Jobs run at least once per slot and are idempotent; a crash between the
job's own commit and step 4 runs it again, which is why they must be.

The ``job_runs`` table is migration step 3 (``stores/migrations/0003_job_runs.sql``).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from services.router.clock import ensure_utc
from services.router.errors import StoreUnavailable
from services.router.jobs.run_records import Claim, JobRuns, RunRecord, Status, result_json

if TYPE_CHECKING:  # psycopg is imported when a ledger connects
    import psycopg

# The lock transaction stays open while the job runs: a server-side idle timeout would end it (and
# free the slot) mid-run; server keepalives free the slot within ~1 min of a host vanishing.
SESSION_SETTINGS = (
    "SET idle_in_transaction_session_timeout = 0; SET tcp_keepalives_idle = 30; "
    "SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3"
)
COLUMNS = "job, slot, status, tool, action, attempts, host, pid, started_at, finished_at, duration_ms, summary, error"
# Advisory lock keys share one 64-bit space with every other user of the database; a hash of the
# (job, slot) pair under our own prefix keeps collisions out of reach.
LOCK_PREFIX = b"backlog-bridge/job_runs/"
P = ParamSpec("P")
T = TypeVar("T")
JOB_RUNS_SQL = (
    "SELECT job, min(slot) AS first_slot, max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success "
    "FROM job_runs GROUP BY job"
)
JOB_RUNS_CACHE_SECONDS = 60.0  # /metrics is scraped every 15 s; one short query a minute is plenty


def slot_lock_key(job: str, slot: datetime) -> int:
    digest = hashlib.blake2b(LOCK_PREFIX + f"{job}@{slot.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def driver_errors(method: Callable[P, T]) -> Callable[P, T]:
    """Driver errors as ``StoreUnavailable`` (the server went away mid-query): the scheduler's loop
    logs and retries a pass that failed so, instead of dying with a traceback."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        import psycopg

        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"scheduler ledger: Postgres failed ({exc.sqlstate or type(exc).__name__})",
                                   backend="postgres") from None

    return wrapper


def _record(row: dict[str, Any]) -> RunRecord:
    """A row as a record, its timestamps in UTC whatever the session's TimeZone."""
    values = {k: row[k] for k in COLUMNS.split(", ")}
    for key in ("slot", "started_at", "finished_at"):
        if values[key] is not None:
            values[key] = ensure_utc(values[key])
    return RunRecord(**values)


class PgRunLedger:
    mode = "postgres"

    def __init__(self, dsn: str, *, connect_timeout_seconds: float = 3.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_seconds))
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._monotonic = monotonic
        self._job_runs: tuple[float, dict[str, JobRuns]] | None = None

    def describe(self) -> str:
        return "multi-process mode (Postgres job_runs ledger with advisory locks)"

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self._dsn, autocommit=autocommit, row_factory=dict_row,
                                   connect_timeout=self._timeout, application_name="backlog-scheduler")
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"scheduler ledger: cannot connect to Postgres ({exc.sqlstate or 'no answer'})",
                                   backend="postgres") from None

    def _shared(self) -> psycopg.Connection[dict[str, Any]]:
        """The autocommit connection for reads and 'running' marks; reopened after a failure."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect(autocommit=True)
        return self._conn

    @driver_errors
    def check_schema(self) -> None:
        row = self._shared().execute("SELECT to_regclass('job_runs') AS t").fetchone()
        if row is None or row["t"] is None:
            raise StoreUnavailable(
                "scheduler ledger: table job_runs is missing; run python3 ops/scripts/migrate_backlog_postgres.py",
                backend="postgres",
            )

    @driver_errors
    def last_slot(self, job: str) -> datetime | None:
        row = self._shared().execute("SELECT max(slot) AS s FROM job_runs WHERE job = %s", (job,)).fetchone()
        return row["s"] if row else None

    @driver_errors
    def running_slots(self, job: str, since: datetime) -> list[datetime]:
        rows = self._shared().execute(
            "SELECT slot FROM job_runs WHERE job = %s AND status = 'running' AND slot >= %s ORDER BY slot",
            (job, since),
        ).fetchall()
        return [r["slot"] for r in rows]

    @driver_errors
    def get(self, job: str, slot: datetime) -> RunRecord | None:
        row = self._shared().execute(
            f"SELECT {COLUMNS} FROM job_runs WHERE job = %s AND slot = %s", (job, slot)
        ).fetchone()
        return _record(row) if row else None

    @driver_errors
    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        rows = self._shared().execute(
            f"SELECT {COLUMNS} FROM job_runs WHERE (%s::text IS NULL OR job = %s) "
            "ORDER BY slot DESC, job LIMIT %s", (job, job, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    @contextmanager
    def _locked(self, record: RunRecord) -> Iterator[_Locked | None]:
        """A transaction holding the slot's advisory lock (None: another process holds it)."""
        conn = self._connect(autocommit=False)
        try:
            locked = self._lock_slot(conn, record)
            yield locked
        finally:
            conn.close()  # without COMMIT this rolls back: the lock goes either way

    @staticmethod
    @driver_errors
    def _lock_slot(conn: psycopg.Connection[dict[str, Any]], record: RunRecord) -> _Locked | None:
        conn.execute(SESSION_SETTINGS)
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok",
                           (slot_lock_key(record.job, record.slot),)).fetchone()
        if not (got and got["ok"]):
            return None
        # A new statement, so a new snapshot: it sees whatever the last holder committed.
        row = conn.execute(f"SELECT {COLUMNS} FROM job_runs WHERE job = %s AND slot = %s",
                           (record.job, record.slot)).fetchone()
        return _Locked(conn, _record(row) if row else None)

    @contextmanager
    def claim(self, record: RunRecord) -> Iterator[Claim | None]:
        with self._locked(record) as locked:
            if locked is None or (locked.existing is not None and locked.existing.status != "running"):
                yield None  # running elsewhere, or finished
                return
            claim = _PgClaim(locked.conn, self._mark_running(record))
            yield claim

    @driver_errors
    def _mark_running(self, record: RunRecord) -> RunRecord:
        row = self._shared().execute(
            f"""INSERT INTO job_runs (job, slot, status, tool, action, attempts, host, pid, started_at)
                VALUES (%s, %s, 'running', %s, %s, 1, %s, %s, %s)
                ON CONFLICT (job, slot) DO UPDATE SET status = 'running', attempts = job_runs.attempts + 1,
                    host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
                    finished_at = NULL, duration_ms = NULL, summary = NULL, error = NULL, result = NULL
                RETURNING {COLUMNS}""",
            (record.job, record.slot, record.tool, record.action, record.host, record.pid, record.started_at),
        ).fetchone()
        assert row is not None
        return _record(row)

    @driver_errors
    def skip(self, record: RunRecord) -> bool:
        """Record a slot too late to run: absent, or ``running`` with a dead holder (lock free)."""
        with self._locked(record) as locked:
            if locked is None or (locked.existing is not None and locked.existing.status != "running"):
                return False
            locked.conn.execute(
                """INSERT INTO job_runs (job, slot, status, tool, action, attempts, host, pid, finished_at, summary)
                   VALUES (%s, %s, 'skipped', %s, %s, 0, %s, %s, %s, %s)
                   ON CONFLICT (job, slot) DO UPDATE SET status = 'skipped', finished_at = EXCLUDED.finished_at,
                       summary = EXCLUDED.summary || ' (its run by ' || coalesce(job_runs.host, '?') || ' pid '
                                 || coalesce(job_runs.pid::text, '?') || ' died)'
                   WHERE job_runs.status = 'running'""",
                (record.job, record.slot, record.tool, record.action, record.host, record.pid, record.finished_at,
                 record.summary),
            )
            locked.conn.commit()
            return True

    def job_runs(self) -> dict[str, JobRuns]:
        """Each job's last success and first slot, at most one query a minute; no table yet means no runs.

        On its own short connection: the router's metrics scrapes must not queue behind a job run."""
        now = self._monotonic()
        if self._job_runs is not None and now - self._job_runs[0] < JOB_RUNS_CACHE_SECONDS:
            return self._job_runs[1]
        import psycopg

        try:
            with self._connect(autocommit=True) as conn:
                rows = conn.execute(JOB_RUNS_SQL).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
        except psycopg.Error as exc:
            raise StoreUnavailable(f"job ledger: cannot read job_runs ({exc.sqlstate or 'no answer'})",
                                   backend="postgres") from None
        summary = {str(r["job"]): JobRuns(r["last_success"], r["first_slot"]) for r in rows}
        self._job_runs = (now, summary)
        return summary

    def reload(self) -> None:
        """Nothing to do: every question is a query."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True, slots=True)
class _Locked:
    conn: psycopg.Connection[dict[str, Any]]
    existing: RunRecord | None


@dataclass
class _PgClaim:
    conn: psycopg.Connection[dict[str, Any]]
    record: RunRecord
    finished: bool = False

    @driver_errors
    def finish(self, status: Status, *, finished_at: datetime, duration_ms: int, summary: str | None,
               error: str | None, result: Any) -> RunRecord:
        """The outcome and the lock's release commit together."""
        row = self.conn.execute(
            f"""UPDATE job_runs SET status = %s, finished_at = %s, duration_ms = %s, summary = %s, error = %s,
                    result = %s::jsonb
                WHERE job = %s AND slot = %s RETURNING {COLUMNS}""",
            (status, finished_at, duration_ms, summary, error, result_json(result), self.record.job, self.record.slot),
        ).fetchone()
        self.conn.commit()
        self.finished = True
        assert row is not None
        self.record = _record(row)
        return self.record

