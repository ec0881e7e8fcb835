"""Postgres for the tests: a fresh database per session on the shared server, and throwaway
clusters that a test can start and stop for real outages.

- ``$BACKLOG_TEST_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
  names an admin connection; each session creates its own database (random name) and drops it.
- No server: ``pytest.fail`` when ``CI=true`` (CI must not silently skip), else ``pytest.skip``
  with the reason.
- ``ThrowawayCluster`` runs ``initdb``/``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (as the
  ``postgres`` user when we are root) on a free port, with password (scram) auth on TCP, so
  tests can plant a canary password and stop the server under a live store.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from services.router.clock import Clock
from services.router.stores.base import BacklogStore

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_session: dict[str, str] = {}
TABLES = "backlog_items, backlog_events, backlog_applied_ops, tracker_sync_cursors, tracker_sync_state"


def admin_dsn() -> str:
    return os.environ.get("BACKLOG_TEST_POSTGRES_DSN", DEFAULT_ADMIN_DSN)


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI: a CI run that skipped its database tests proved nothing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(reason)


def server_problem(dsn: str | None = None) -> str | None:
    import psycopg

    from services.router.dsn import describe_error, redact_dsn

    dsn = dsn or admin_dsn()
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {redact_dsn(dsn)}: {describe_error(exc, dsn)}"


def with_db(dsn: str, name: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=name)


def migrate(dsn: str) -> None:
    import psycopg

    from services.router.stores import pg_schema

    with psycopg.connect(dsn, autocommit=True) as conn:
        pg_schema.migrate(conn)


@contextmanager
def fresh_database(prefix: str = "bb_test", *, migrated: bool = True) -> Iterator[str]:
    """A new database on the test server, dropped afterwards (even if the test failed)."""
    import psycopg

    if "problem" not in _session:  # asked once: an unreachable host must not cost every test a timeout
        _session["problem"] = server_problem() or ""
    if _session["problem"]:
        unavailable(_session["problem"])
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = with_db(admin_dsn(), name)
        if migrated:
            migrate(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def session_dsn(request: pytest.FixtureRequest) -> str:
    """One migrated database for the whole session, dropped when pytest finishes."""
    if "dsn" not in _session:
        manager = fresh_database("bb_contract")
        _session["dsn"] = manager.__enter__()

        def drop() -> None:
            _session.pop("dsn", None)
            manager.__exit__(None, None, None)

        request.config.add_cleanup(drop)
    return _session["dsn"]


def truncate(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE")


def postgres_store_factory(
    request: pytest.FixtureRequest, clock: Clock, opened: list[BacklogStore]
) -> Callable[[], BacklogStore]:
    """The contract suite's Postgres backend: each call opens a new store (pool) on the
    session database, emptied before the test."""
    from services.router.stores.postgres import PostgresBacklogStore

    dsn = session_dsn(request)
    truncate(dsn)

    def factory() -> BacklogStore:
        store = PostgresBacklogStore(dsn, clock=clock)
        opened.append(store)
        return store

    return factory


# -- throwaway clusters ----------------------------------------------------------------------
def pg_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    """A private Postgres server: ``start()``, ``stop()`` (immediate: a crash, as an outage looks
    to clients), ``start()`` again, ``destroy()``. TCP uses scram passwords; the admin connects
    over the cluster's own unix socket."""

    def __init__(self) -> None:
        bindir = pg_bin_dir()
        if bindir is None:
            unavailable("initdb/pg_ctl not found under /usr/lib/postgresql/*/bin")
        assert bindir is not None
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="bb_pg_"))
        self.data = self.root / "data"
        self.port = free_port()
        try:
            self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        except KeyError:
            unavailable("running as root, and there is no postgres user to run initdb/pg_ctl as")
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions",
                  "--auth-local=trust", "--auth-host=scram-sha-256")
        self.running = False

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self._owner is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30",
                  "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        try:
            self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def admin_dsn(self) -> str:
        return f"host={self.root} port={self.port} user=postgres dbname=postgres"

    def dsn(self, user: str, password: str, dbname: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, *statements: str) -> list[Any]:
        import psycopg

        out: list[Any] = []
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            for statement in statements:
                cur = conn.execute(statement)
                out.append(cur.fetchall() if cur.description else None)
        return out

    def create_app_database(self, user: str, password: str, dbname: str) -> str:
        """A login role with a password owning a database; returns its TCP DSN."""
        self.admin(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", f"CREATE DATABASE {dbname} OWNER {user}")
        return self.dsn(user, password, dbname)


@contextmanager
def throwaway_cluster() -> Iterator[ThrowawayCluster]:
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


_clusters: dict[str, ThrowawayCluster] = {}


def session_cluster(request: pytest.FixtureRequest) -> ThrowawayCluster:
    """One throwaway cluster for the session (a start costs seconds); tests that stop it must
    start it again. Destroyed when pytest finishes."""
    cluster = _clusters.get("c")
    if cluster is None:
        cluster = ThrowawayCluster()
        _clusters["c"] = cluster

        def destroy() -> None:
            _clusters.pop("c", None)
            cluster.destroy()

        request.config.add_cleanup(destroy)
    if not cluster.running:
        cluster.start()
    return cluster


def app_database(cluster: ThrowawayCluster, user: str, password: str, dbname: str, *, empty: str) -> str:
    """The DSN of a test module's database on the throwaway cluster: created and migrated the first
    time, and its ``empty`` tables (a comma-separated list) truncated every time."""
    import psycopg

    url = cluster.dsn(user, password, dbname)
    if not cluster.admin(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'")[0]:
        cluster.create_app_database(user, password, dbname)
        migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {empty} CASCADE")
    return url


class FakeMonotonic:
    """A monotonic clock a test moves by hand (the Auto store's retry interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
