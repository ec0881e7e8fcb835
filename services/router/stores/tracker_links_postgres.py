"""Tracker links on Postgres: the tables of migration step 6 (``0006_tracker_sync.sql``).

A small pool of its own (1 to 2 connections), like the signal store. The database enforces what
the other backends check in code: a link needs its item (foreign key, ``ON DELETE CASCADE``) and
a remote issue belongs to one item (unique index). Comments since each link's mark are one
query for all links (``new_comments``), so a sync with nothing to do costs a constant number of
round trips.

The sync lock is a session-level advisory lock on a dedicated connection, held for the run:
two replicas never run one tracker's sync at once, and a replica that dies releases it with its
connection. ``check()`` pings that connection before each remote create, so a run whose lock
went with a dropped session stops instead of racing a newer run.
"""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.router.domain.changes import Record
from services.router.dsn import describe_error, redact_dsn
from services.router.errors import Conflict, NotFound, StoreUnavailable
from services.router.stores import pg_sql as q
from services.router.stores.tracker_links import SyncLock, SyncWork, TrackerLink
from services.router.stores.tracker_links_memory import wait_until

SCHEMA_MISSING = "tracker sync tables missing: run ops/scripts/migrate_backlog_postgres.py"
LOCK_PREFIX = b"backlog-bridge/tracker_sync/"
Conn = psycopg.Connection[Any]

UPSERT_LINK = """
INSERT INTO tracker_links (item_id, tracker, project, state, remote_key, url, data, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (item_id) DO UPDATE SET tracker = EXCLUDED.tracker, project = EXCLUDED.project,
    state = EXCLUDED.state, remote_key = EXCLUDED.remote_key, url = EXCLUDED.url, data = EXCLUDED.data,
    updated_at = now()
"""
UPSERT_WORK = """
INSERT INTO tracker_sync_work (tracker, subject, kind, item_id, data, updated_at) VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (tracker, subject) DO UPDATE SET kind = EXCLUDED.kind, item_id = EXCLUDED.item_id,
    data = EXCLUDED.data, updated_at = now()
"""
UPSERT_CURSOR = """
INSERT INTO tracker_sync_cursors (tracker, project, cursor, updated_at) VALUES (%s, %s, %s, now())
ON CONFLICT (tracker, project) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
"""
UPSERT_STATE = """
INSERT INTO tracker_sync_state (tracker, data, updated_at) VALUES (%s, %s, now())
ON CONFLICT (tracker) DO UPDATE SET data = EXCLUDED.data, updated_at = now()
"""
NEW_COMMENTS = f"""
SELECT {q.EVENT_COLUMNS} FROM unnest({q.KEYS_PARAM}, {q.KEYS_PARAM}) AS m(item_id, mark)
JOIN backlog_events e ON e.item_id = m.item_id AND e.type = 'commented' AND (m.mark IS NULL OR e.id > m.mark)
ORDER BY e.item_id, e.seq
"""


def lock_key(tracker: str) -> int:
    digest = hashlib.blake2b(LOCK_PREFIX + tracker.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgSyncLock:
    def __init__(self, conn: Conn, dsn: str) -> None:
        self._conn = conn
        self._dsn = dsn

    def check(self) -> None:
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"lost the tracker sync lock: {describe_error(exc, self._dsn)}") from None


class PostgresLinkStore:
    backend = "postgres"

    def __init__(self, dsn: str, *, connect_timeout_seconds: float = 3.0) -> None:
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_seconds))
        self._pool = ConnectionPool(
            dsn, min_size=1, max_size=2, open=False, name="tracker-links", check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": self._timeout, "application_name": "backlog-trackers"},
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_seconds)
        except Exception as exc:
            self._pool.close()
            raise StoreUnavailable(f"Postgres unreachable at {redact_dsn(dsn)} for tracker links: "
                                   f"{describe_error(exc, dsn)}") from None
        rows = self._read("SELECT to_regclass('tracker_links') IS NOT NULL AS ok")
        if not rows or not rows[0]["ok"]:
            self.close()
            raise StoreUnavailable(SCHEMA_MISSING, reason="schema_missing")

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.UndefinedTable:
            raise StoreUnavailable(SCHEMA_MISSING, reason="schema_missing") from None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound("no such backlog item for this tracker link") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(f"tracker links: Postgres unavailable ({redact_dsn(self._dsn)}): "
                                   f"{describe_error(exc, self._dsn)}") from None

    def _read(self, sql: str, params: Any = None) -> builtins.list[dict[str, Any]]:
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Any) -> None:
        with self._conn() as conn:
            conn.execute(sql, params)

    # -- links -----------------------------------------------------------------------------------
    def get_link(self, item_id: str) -> TrackerLink | None:
        rows = self._read("SELECT data FROM tracker_links WHERE item_id = %s", (item_id,))
        return TrackerLink.from_dict(rows[0]["data"]) if rows else None

    def links(self, tracker: str | None = None) -> builtins.list[TrackerLink]:
        rows = self._read("SELECT data FROM tracker_links WHERE %s::text IS NULL OR tracker = %s ORDER BY item_id",
                          (tracker, tracker))
        return [TrackerLink.from_dict(r["data"]) for r in rows]

    def link_by_key(self, tracker: str, remote_key: str) -> TrackerLink | None:
        rows = self._read("SELECT data FROM tracker_links WHERE tracker = %s AND remote_key = %s",
                          (tracker, remote_key))
        return TrackerLink.from_dict(rows[0]["data"]) if rows else None

    def put_link(self, link: TrackerLink) -> None:
        self.put_links([link])

    def put_links(self, links: Sequence[TrackerLink], *, delete: Sequence[str] = ()) -> None:
        """One transaction (one commit, one WAL flush): the deletes, then the upserts."""
        rows = [(link.item_id, link.tracker, link.project, link.state, link.remote_key, link.url,
                 Jsonb(link.to_dict())) for link in links]
        try:
            with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
                if delete:
                    cur.execute("DELETE FROM tracker_links WHERE item_id = ANY(%s)", (list(delete),))
                if rows:
                    cur.executemany(UPSERT_LINK, rows)
        except NotFound:
            if len(links) == 1:
                raise NotFound(f"no backlog item {links[0].item_id}", id=links[0].item_id) from None
            raise NotFound("no backlog item for one of these tracker links") from None
        except psycopg.errors.UniqueViolation:
            for link in links:
                holder = self.link_by_key(link.tracker, link.remote_key) if link.remote_key else None
                if holder is not None and holder.item_id != link.item_id:
                    raise Conflict(f"{link.tracker} issue {link.remote_key} is already linked to {holder.item_id}",
                                   item_id=holder.item_id) from None
            raise Conflict("two of these tracker links name the same remote issue") from None

    def delete_link(self, item_id: str) -> None:
        self._write("DELETE FROM tracker_links WHERE item_id = %s", (item_id,))

    # -- work ------------------------------------------------------------------------------------
    def work(self, tracker: str | None = None) -> builtins.list[SyncWork]:
        rows = self._read("SELECT data FROM tracker_sync_work WHERE %s::text IS NULL OR tracker = %s "
                          "ORDER BY tracker, subject", (tracker, tracker))
        return [SyncWork.from_dict(r["data"]) for r in rows]

    def put_work(self, work: SyncWork) -> None:
        try:
            self._write(UPSERT_WORK, (work.tracker, work.subject, work.kind, work.item_id, Jsonb(work.to_dict())))
        except NotFound:
            return  # its item was removed meanwhile: nothing left to do for it

    def delete_work(self, tracker: str, subject: str) -> None:
        self._write("DELETE FROM tracker_sync_work WHERE tracker = %s AND subject = %s", (tracker, subject))

    # -- cursors and tracker state ---------------------------------------------------------------
    def cursor(self, tracker: str, project: str) -> dict[str, Any] | None:
        rows = self._read("SELECT cursor FROM tracker_sync_cursors WHERE tracker = %s AND project = %s",
                          (tracker, project))
        return dict(rows[0]["cursor"]) if rows else None

    def put_cursor(self, tracker: str, project: str, cursor: dict[str, Any]) -> None:
        self._write(UPSERT_CURSOR, (tracker, project, Jsonb(cursor)))

    def tracker_state(self, tracker: str) -> dict[str, Any]:
        rows = self._read("SELECT data FROM tracker_sync_state WHERE tracker = %s", (tracker,))
        return dict(rows[0]["data"]) if rows else {}

    def put_tracker_state(self, tracker: str, state: dict[str, Any]) -> None:
        self._write(UPSERT_STATE, (tracker, Jsonb(state)))

    def new_comments(self, marks: Mapping[str, str | None]) -> dict[str, builtins.list[Record]]:
        if not marks:
            return {}
        rows = self._read(NEW_COMMENTS, (list(marks), list(marks.values())))
        out: dict[str, builtins.list[Record]] = {}
        for row in rows:
            out.setdefault(row["item_id"], []).append(q.event_record(row))
        return out

    # -- the sync lock ---------------------------------------------------------------------------
    @contextmanager
    def sync_lock(self, tracker: str, *, wait_seconds: float = 0.0) -> Iterator[SyncLock | None]:
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout,
                                   application_name="backlog-tracker-sync")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"tracker sync lock: Postgres unreachable at {redact_dsn(self._dsn)}: "
                                   f"{describe_error(exc, self._dsn)}") from None
        try:
            key = lock_key(tracker)

            def attempt() -> bool:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                return bool(row and row[0])

            yield PgSyncLock(conn, self._dsn) if wait_until(time.monotonic() + wait_seconds, attempt) else None
        finally:
            conn.close()  # ends the session and with it the lock

    def close(self) -> None:
        self._pool.close()
