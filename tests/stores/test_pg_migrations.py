"""Migration steps run once each: what a database executes, read from the server's own statement log.

The databases live on the session's throwaway cluster with ``log_statement = 'all'`` set on them
alone (a superset of ``'ddl'``: a write that is not DDL would show too, and the reads a migrate
does prove the log is being captured), so "no DDL" is what Postgres saw, not what the script
says it did.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from fnmatch import fnmatch
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from services.router.stores import pg_schema
from services.router.stores.pg_schema import MigrationError, Step, load_steps, split_statements
from tests.pg_support import ThrowawayCluster, fresh_database

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "ops/scripts/migrate_backlog_postgres.py"
LEGACY_V5 = Path(__file__).with_name("data") / "legacy_v5_migration.sql"
READS = {"SELECT", "SET", "SHOW", "BEGIN", "COMMIT", "ROLLBACK", "DEALLOCATE"}  # DEALLOCATE: psycopg housekeeping
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)
_STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)", re.S)


# -- the step files, without a database ----------------------------------------------------------
def test_split_statements_keeps_bodies_literals_and_identifiers_whole() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
    /* block /* nested; */ still comment; */
    SELECT 'it''s; here', E'back\\'slash;', "odd;name", $$ a; b $$, a$b$c FROM t;
    DO $x$ BEGIN PERFORM 1; END $x$
    """
    assert split_statements(script) == (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$",
        """SELECT 'it''s; here', E'back\\'slash;', "odd;name", $$ a; b $$, a$b$c FROM t""",
        "DO $x$ BEGIN PERFORM 1; END $x$",
    )
    with pytest.raises(MigrationError, match=r"unterminated \$fn\$ body"):
        split_statements("CREATE FUNCTION f() AS $fn$ BEGIN")


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(("files", "problem"), [
    ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}, "two migration files have version 1"),
    ({"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 3;"}, r"without gaps; the files have \[1, 3\]"),
    ({"0001_a.sql": "SELECT 1;", "2_tracker.sql": "SELECT 2;"}, "2_tracker.sql: a migration file is named NNNN"),
    ({"0001_a.sql": "-- nothing but a comment\n"}, "0001_a.sql: no SQL statement"),
    ({"0001_a.sql": "CREATE INDEX CONCURRENTLY i ON t (x);"}, "0001_a.sql: steps run in one transaction"),
    ({"0001_a.sql": "BEGIN; CREATE TABLE t (x int); COMMIT;"}, "0001_a.sql: steps run in one transaction"),
    ({"README.md": "not a step"}, "no migration files"),
])
def test_step_files_that_cannot_be_migrated_fail_to_load(tmp_path: Path, files: dict[str, str], problem: str) -> None:
    with pytest.raises(MigrationError, match=problem):
        load_steps(write(tmp_path / "migrations", files))


def test_adding_a_step_is_adding_one_file(tmp_path: Path) -> None:
    shipped = {p.name: p.read_text() for p in (REPO / "services/router/stores/migrations").glob("*.sql")}
    nxt = len(shipped) + 1
    steps = load_steps(write(tmp_path / "migrations", {
        **shipped, f"{nxt:04d}_tracker_links.sql": "CREATE TABLE tracker_links (id text PRIMARY KEY);", "README": "x"}))
    assert [s.version for s in steps] == [*range(1, nxt + 1)]
    assert (steps[-1].name, steps[-1].statements) == ("tracker_links", (
        "CREATE TABLE tracker_links (id text PRIMARY KEY)",))
    assert steps[:-1] == pg_schema.STEPS


def test_every_step_file_ships_as_package_data() -> None:
    """A wheel carries what ``[tool.setuptools.package-data]`` names: every step file must match it."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = [f"{package.replace('.', '/')}/{glob}" for package, globs_ in globs.items() for glob in globs_]
    files = [p.relative_to(REPO).as_posix() for p in (REPO / "services/router/stores/migrations").iterdir()]
    assert files and all(any(fnmatch(f, pattern) for pattern in patterns) for f in files), (files, patterns)
    assert {f.split("/")[-1] for f in files} == {s.file for s in pg_schema.STEPS}


# -- what the server executes --------------------------------------------------------------------
@dataclass
class LoggedDatabase:
    """A database whose every statement the server logs, and the log read from a mark."""

    cluster: ThrowawayCluster
    dsn: str
    mark: int = 0

    def since_mark(self) -> list[str]:
        """The statements logged since the last call (each as it was sent)."""
        text = (self.cluster.root / "server.log").read_text(errors="replace")
        fresh, self.mark = text[self.mark:], len(text)
        starts = [m.start() for m in _ENTRY.finditer(fresh)] + [len(fresh)]
        statements = []
        for a, b in pairwise(starts):
            match = _STATEMENT.search(fresh[a:b])
            if match:  # a statement's later lines come with a leading tab; DETAIL lines are entries
                first, *rest = match.group(1).rstrip("\n").split("\n")
                statements.append("\n".join([first, *(line.removeprefix("\t") for line in rest)]))
        return statements


def writes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.split(None, 1)[0].upper() not in READS]


def expected_writes(steps: tuple[Step, ...], *, bootstrap: bool) -> list[str]:
    out = [pg_schema.MIGRATIONS_DDL] if bootstrap else []
    for step in steps:
        out += [*step.statements, RECORD]
    return out


@pytest.fixture
def logged(cluster: ThrowawayCluster) -> LoggedDatabase:
    name = f"bb_steps_{uuid.uuid4().hex[:8]}"
    dsn = cluster.create_app_database(name, f"pw-{name}", name)
    cluster.admin(f"ALTER DATABASE {name} SET log_statement = 'all'")
    db = LoggedDatabase(cluster, dsn)
    db.since_mark()
    return db


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)


def public_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]


def test_dry_run_changes_nothing_and_a_second_migrate_executes_no_ddl(logged: LoggedDatabase) -> None:
    dry = run("--dsn", logged.dsn, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert writes(logged.since_mark()) == []
    assert public_tables(logged.dsn) == []
    for step in pg_schema.STEPS:  # every pending step, its statements and its record, in order
        block = dry.stdout.split(f"-- step {step.version} {step.name} ({step.file})\n", 1)[1]
        assert block.startswith(";\n".join([*step.statements, step.record_sql]) + ";\n")
    assert dry.stdout.endswith("COMMIT;\n-- dry run: nothing was changed\n")

    first = run("--dsn", logged.dsn)
    assert first.returncode == 0, first.stderr
    assert writes(logged.since_mark()) == expected_writes(pg_schema.STEPS, bootstrap=True)

    second = run("--dsn", logged.dsn)
    assert second.returncode == 0, second.stderr
    seen = logged.since_mark()
    assert any("pg_advisory_xact_lock" in s for s in seen)  # the log captured this run...
    assert writes(seen) == []  # ...and it executed no DDL, nor any other write
    assert second.stdout.splitlines()[1:] == [f"nothing to do: schema is at version {pg_schema.LATEST_VERSION}"]
    assert "-- nothing to do" in run("--dsn", logged.dsn, "--dry-run").stdout
    assert writes(logged.since_mark()) == []


def test_a_partially_migrated_database_gets_exactly_the_missing_steps(logged: LoggedDatabase) -> None:
    with psycopg.connect(logged.dsn, autocommit=True) as conn:
        pg_schema.migrate(conn, pg_schema.STEPS[:3])
    logged.since_mark()
    pending = run("--dsn", logged.dsn, "--verify")
    assert pending.returncode == 5
    assert "drift: step 4 backlog_dashboard_counts (0004_backlog_dashboard_counts.sql) is not applied" in pending.stdout
    assert not [line for line in pending.stdout.splitlines() if "missing" in line]  # steps 1-3 are all there
    logged.since_mark()  # (verify builds the expected schema in a scratch schema it rolls back)

    done = run("--dsn", logged.dsn)
    assert done.returncode == 0, done.stderr
    assert writes(logged.since_mark()) == expected_writes(pg_schema.STEPS[3:], bootstrap=False)
    recorded = [line for line in done.stdout.splitlines() if line.startswith("recorded schema version")]
    assert recorded == [f"recorded schema version {s.version} ({s.name})" for s in pg_schema.STEPS[3:]]
    assert run("--dsn", logged.dsn, "--verify").returncode == 0


def test_a_database_migrated_by_the_pre_step_file_code_is_up_to_date(logged: LoggedDatabase) -> None:
    """Databases at version 5 from the code that re-ran its Python DDL on every migrate."""
    with psycopg.connect(logged.dsn, autocommit=True) as conn:
        conn.execute(LEGACY_V5.read_text())
    logged.since_mark()
    done = run("--dsn", logged.dsn)
    assert done.returncode == 0, done.stderr
    later = tuple(s for s in pg_schema.STEPS if s.version > 5)  # steps added since: only those run
    assert writes(logged.since_mark()) == expected_writes(later, bootstrap=False)
    verified = run("--dsn", logged.dsn, "--verify")
    assert verified.returncode == 0, verified.stdout  # the step files define what that code made


# -- the refusals ---------------------------------------------------------------------------------
def test_objects_already_there_are_reported_and_not_run() -> None:
    with fresh_database("bb_steps_there", migrated=False) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:  # made by hand before any migration
            conn.execute(pg_schema.STEPS[0].statements[0])
        done = run("--dsn", dsn)
        assert done.returncode == 0, done.stderr
        assert "already there: table backlog_items" in done.stdout
        assert "created table backlog_events" in done.stdout
        assert run("--dsn", dsn, "--verify").returncode == 0


def test_a_recorded_step_of_another_name_stops_the_migration() -> None:
    """Two branches that both numbered a step 5: the database knows the other one."""
    with fresh_database("bb_steps_clash") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE schema_migrations SET name = 'tracker_links' WHERE version = 5")
        done = run("--dsn", dsn)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            "error: schema_migrations records version 5 as 'tracker_links', but step file "
            "0005_backlog_counts_at_commit.sql is 'backlog_counts_at_commit': this database was migrated from "
            "other step files; nothing was changed")
        verified = run("--dsn", dsn, "--verify")
        assert verified.returncode == 5
        assert "drift: schema_migrations records version 5 as 'tracker_links'" in verified.stdout


def test_a_failing_step_names_itself_and_leaves_nothing(tmp_path: Path) -> None:
    steps = load_steps(write(tmp_path / "migrations", {
        "0001_first.sql": "CREATE TABLE first_table (id int PRIMARY KEY);",
        "0002_broken.sql": "CREATE TABLE second_table (id int);\nCREATE INDEX broken_idx ON second_table (nope);"}))
    with fresh_database("bb_steps_fail", migrated=False) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn) as failed:
            pg_schema.migrate(conn, steps)
        assert failed.value.__notes__ == [
            "in step 2 broken (0002_broken.sql): CREATE INDEX broken_idx ON second_table (nope)"]
        assert public_tables(dsn) == []
