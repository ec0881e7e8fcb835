"""``ops/scripts/migrate_backlog_postgres.py`` as operators run it (RUNBOOK §2), on real databases.

Every run uses a DSN carrying a canary password (the shared server trusts any password; the
throwaway cluster checks it), and no output may contain it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from services.router.dsn import describe_error, redact_dsn
from services.router.stores import pg_schema
from tests.pg_support import admin_dsn, free_port, fresh_database, server_problem, session_cluster, unavailable

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "ops/scripts/migrate_backlog_postgres.py"
CANARY = f"canary-{uuid.uuid4().hex[:16]}"
BACKLOG_INDEXES = {
    "backlog_items_pkey", "backlog_items_dedupe_key_key", "backlog_items_env_status_idx", "backlog_items_service_idx",
    "backlog_items_due_date_idx", "backlog_items_owner_idx", "backlog_items_category_idx",
    "backlog_items_env_status_priority_idx", "backlog_items_active_due_idx", "backlog_items_active_service_idx",
    "backlog_items_closed_updated_idx",
}


def run(*args: str, python: str = sys.executable, env: dict[str, str] | None = None,
        dsn_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("BACKLOG_POSTGRES_DSN", "POSTGRES_DSN")}
    environ.update(env or {})
    environ.update(dsn_env or {})
    done = subprocess.run([python, SCRIPT, *args], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=120, check=False)
    assert CANARY not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def with_canary(dsn: str) -> str:
    return make_conninfo(dsn, password=CANARY)


@pytest.fixture
def empty_db() -> Iterator[str]:
    with fresh_database("bb_migrate", migrated=False) as dsn:
        yield dsn


def tables(dsn: str) -> list[str]:
    """What ``\\dt`` lists: the tables in the public schema."""
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]


def test_dry_run_then_apply_then_nothing_to_do(empty_db: str) -> None:
    dsn = with_canary(empty_db)
    dry = run("--dsn", dsn, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "CREATE TABLE IF NOT EXISTS backlog_items" in dry.stdout
    assert "-- dry run: nothing was changed" in dry.stdout
    assert "password=***" in dry.stdout
    assert tables(empty_db) == []
    if shutil.which("psql"):
        psql = subprocess.run(["psql", empty_db, "-c", r"\dt"], capture_output=True, text=True, check=False)
        assert "Did not find any relations" in psql.stdout + psql.stderr

    applied = run("--dsn", dsn)
    assert applied.returncode == 0, applied.stderr
    assert "created table backlog_items" in applied.stdout
    assert "created table backlog_events" in applied.stdout
    assert "created index backlog_items_active_due_idx" in applied.stdout
    assert f"done: schema is at version {pg_schema.LATEST_VERSION}" in applied.stdout
    assert {"backlog_items", "backlog_events", "schema_migrations"} <= set(tables(empty_db))

    again = run("--dsn", dsn)
    assert again.returncode == 0
    assert again.stdout.splitlines()[1:] == [f"nothing to do: schema is at version {pg_schema.LATEST_VERSION}"]
    assert "nothing to do" in run("--dsn", dsn, "--dry-run").stdout

    with psycopg.connect(empty_db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        assert versions == [s.version for s in pg_schema.STEPS]
        indexes = dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'backlog_items'").fetchall())
        events_indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'backlog_events'").fetchall()}
        unique = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'backlog_items_dedupe_key_key'"
        ).fetchone()
        cascade = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'backlog_events'::regclass "
            "AND contype = 'f'").fetchone()
    assert set(indexes) >= BACKLOG_INDEXES
    assert events_indexes >= {"backlog_events_item_id_idx", "backlog_events_ts_idx"}
    assert unique is not None and unique[0] == "UNIQUE (dedupe_key)"
    assert cascade is not None and "ON DELETE CASCADE" in cascade[0]
    assert "WHERE" in indexes["backlog_items_active_due_idx"]
    assert "(env, service)" in indexes["backlog_items_active_service_idx"]


def test_deleting_an_item_deletes_its_events(empty_db: str) -> None:
    from services.router.clock import FixedClock, parse_utc
    from services.router.stores.postgres import PostgresBacklogStore
    from tests.factories import item

    assert run("--dsn", empty_db).returncode == 0
    store = PostgresBacklogStore(empty_db, clock=FixedClock(parse_utc("2026-11-26T12:00:00Z")))
    try:
        created = store.upsert(item("k1"), actor="gen").item
        store.add_comment(created["id"], "hello", actor="bob")
    finally:
        store.close()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM backlog_events").fetchone() == (2,)
        conn.execute("DELETE FROM backlog_items WHERE id = %s", (created["id"],))
        assert conn.execute("SELECT count(*) FROM backlog_events").fetchone() == (0,)


def test_verify_names_a_dropped_index_and_trigger_and_a_migrate_does_not_hide_them(empty_db: str) -> None:
    assert run("--dsn", empty_db).returncode == 0
    clean = run("--dsn", empty_db, "--verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[-1].startswith(f"ok: schema 'public' matches steps 1-{pg_schema.LATEST_VERSION}")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("DROP INDEX backlog_items_owner_idx")
        conn.execute("DROP TRIGGER backlog_counts_ins ON backlog_items")
        conn.execute("ALTER TABLE backlog_items DISABLE TRIGGER backlog_counts_del")
    drift = run("--dsn", empty_db, "--verify")
    assert drift.returncode == 5
    assert sorted(line for line in drift.stdout.splitlines() if line.startswith("drift:")) == [
        "drift: missing index backlog_items_owner_idx on backlog_items (defined in 0001_backlog_items_and_events.sql)",
        "drift: missing trigger backlog_counts_ins on backlog_items (defined in 0004_backlog_dashboard_counts.sql)",
        "drift: trigger backlog_counts_del on backlog_items is disabled",
    ]
    assert one_error_line(drift) == "error: schema 'public' differs from its steps in 3 ways (listed above)"
    # The steps are recorded, so a migrate runs nothing: drift is for an operator to see, not to paper over.
    assert "nothing to do" in run("--dsn", empty_db).stdout
    # The remedy: the defining statements from the step files.
    index = next(s for s in pg_schema.STEPS[0].statements if "backlog_items_owner_idx" in s)
    trigger = next(s for s in pg_schema.STEPS[3].statements if s.startswith("CREATE TRIGGER backlog_counts_ins"))
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(index)
        conn.execute(trigger)
        conn.execute("ALTER TABLE backlog_items ENABLE TRIGGER backlog_counts_del")
    assert run("--dsn", empty_db, "--verify").returncode == 0


def test_two_migrators_at_once(empty_db: str) -> None:
    procs = [subprocess.Popen([sys.executable, SCRIPT, "--dsn", empty_db], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("created table backlog_items" in out for out, _ in outputs) == 1


def test_dsn_sources_in_order(empty_db: str) -> None:
    other = make_conninfo(empty_db, dbname="no_such_db_here")
    assert "(from $BACKLOG_POSTGRES_DSN)" in run(
        "--dry-run", dsn_env={"BACKLOG_POSTGRES_DSN": empty_db, "POSTGRES_DSN": other}).stdout
    assert "(from $POSTGRES_DSN)" in run("--dry-run", dsn_env={"POSTGRES_DSN": empty_db}).stdout
    assert "(from --dsn)" in run("--dry-run", "--dsn", empty_db, dsn_env={"BACKLOG_POSTGRES_DSN": other}).stdout


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 on PATH")
def test_the_runbook_command_with_the_system_python3(empty_db: str) -> None:
    """``python3 ops/scripts/…`` from the repo root works even when that python3 has no psycopg."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the repository")
    done = run("--dsn", with_canary(empty_db), "--dry-run", python=str(shutil.which("python3")))
    assert done.returncode == 0, done.stderr
    assert "-- dry run: nothing was changed" in done.stdout


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("case", "code", "expected"), [
    ("unreachable", 4, "Connection refused"),
    ("wrong_database", 4, "does not exist"),
    ("invalid_dsn", 2, "invalid DSN"),
])
def test_failures_are_one_clear_line(case: str, code: int, expected: str) -> None:
    if case == "wrong_database" and (problem := server_problem()) is not None:
        unavailable(problem)
    dsn = {
        "unreachable": f"postgresql://someone:{CANARY}@127.0.0.1:{free_port()}/daarion",
        "wrong_database": make_conninfo(admin_dsn(), dbname=f"missing_{uuid.uuid4().hex[:8]}", password=CANARY),
        "invalid_dsn": f"host=127.0.0.1 password={CANARY} dbname",
    }[case]
    done = run("--dsn", dsn)
    assert done.returncode == code
    assert expected in one_error_line(done)
    assert done.stdout == ""


def test_no_dsn_and_missing_driver() -> None:
    assert "no DSN" in one_error_line(run("--dry-run"))
    # -S hides site-packages; the guard stops the re-exec into .venv: psycopg is missing for real.
    done = subprocess.run([sys.executable, "-S", SCRIPT, "--dsn", f"postgresql://u:{CANARY}@127.0.0.1/x"],
                          cwd=REPO, env={"PATH": os.environ.get("PATH", ""), "BACKLOG_MIGRATE_REEXEC": "1"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert "psycopg 3 is not installed" in one_error_line(done)
    assert CANARY not in done.stdout + done.stderr


def test_wrong_password_on_a_scram_server(request: pytest.FixtureRequest) -> None:
    cluster = session_cluster(request)
    user = f"bb_mig_{uuid.uuid4().hex[:6]}"
    cluster.admin(f"CREATE ROLE {user} LOGIN PASSWORD 'right-{CANARY}'")
    done = run("--dsn", cluster.dsn(user, CANARY, "postgres"))
    assert done.returncode == 4
    assert "password authentication failed" in one_error_line(done)
    ok = run("--dsn", cluster.dsn(user, f"right-{CANARY}", "postgres"), "--dry-run")
    assert ok.returncode == 0 and "right-" not in ok.stdout


@pytest.mark.parametrize(("dsn", "shown"), [
    ("postgresql://user:p%40ss@host:5432/daarion", "postgresql://user:***@host:5432/daarion"),
    ("postgresql://user:pass@host/db?sslmode=require&password=zz", "postgresql://user:***@host/db?sslmode=require"
                                                                  "&password=***"),
    ("host=h user=u password=s3cr3t dbname=x", "host=h user=u password=*** dbname=x"),
    ("host=h password='a b c' dbname=x", "host=h password=*** dbname=x"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
])
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_describe_error_scrubs_the_password_and_keeps_one_line() -> None:
    dsn = "postgresql://u:p%40ss@h/db"
    error = RuntimeError("connection failed: saw p@ss and p%40ss\n\tIs the server running?")
    assert describe_error(error, dsn) == "connection failed: saw *** and ***"
