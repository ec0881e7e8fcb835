"""The Postgres schema as numbered migration steps, each run exactly once (RUNBOOK §2, DESIGN §8).

The steps are the files ``migrations/NNNN_name.sql`` beside this module (shipped as package
data): version ``NNNN``, name ``name``, the statements in file order. Shared by
``ops/scripts/migrate_backlog_postgres.py``, the stores (which only check that their tables are
there), ``pg_verify`` and the tests, so there is exactly one definition of every table.

- ``schema_migrations`` records the steps a database has (version, name, applied_at). A step
  runs only when its version is not recorded there, so migrating an up-to-date database runs
  no DDL at all; a released step is never edited (a database that recorded it would not run it
  again): the schema changes by adding the next file.
- One advisory lock serializes concurrent migrators; the pending steps and their records are
  one transaction (Postgres DDL is transactional), so a failure leaves the database as it was —
  which is also why a step cannot hold ``CREATE INDEX CONCURRENTLY`` or its own ``BEGIN``.
- ``CREATE … IF NOT EXISTS`` of an object already there (made by hand, or by an older release
  before it was recorded) is reported as "already there" and not run.

Imports nothing outside the standard library: the migration script loads this module before it
knows whether psycopg is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Protocol

MIGRATIONS_TABLE = "schema_migrations"
MIGRATIONS_DDL = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
RECORD_SQL = f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)"
# pg_advisory_xact_lock key for migrators ("backlog-bridge/migrate", as an int8).
MIGRATION_LOCK_KEY = 0x6262_6D69_6772_6174
MIGRATIONS_PACKAGE = "services.router.stores"
MIGRATIONS_FOLDER = "migrations"

BACKLOG_TABLES = ("backlog_items", "backlog_events", "backlog_applied_ops", "backlog_counts", "backlog_trend_weeks")
# Columns of later steps the stores read and write: a database without them is not migrated yet.
BACKLOG_COLUMNS = (("backlog_items", "accepted"), ("backlog_items", "accepted_hold"),
                   ("backlog_events", "on_behalf_of"))


class MigrationError(Exception):
    """The step files or the recorded versions do not allow a migration (nothing was run)."""


# -- step files ----------------------------------------------------------------------------------
_FILE_NAME = re.compile(r"^(\d{4})_([a-z][a-z0-9_]*)\.sql$")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")
_NOT_IN_A_TRANSACTION = re.compile(
    r"^(?:BEGIN|COMMIT|ROLLBACK|END|START\s+TRANSACTION|VACUUM)\b"
    r"|^(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+(?:\(.*?\)\s*)?\w+)\s+CONCURRENTLY\b", re.I)


def _skip_quoted(script: str, at: int, quote: str, backslashes: bool) -> int:
    """Index just past the literal or quoted identifier opening at ``at`` (doubled quotes inside)."""
    i = at + 1
    while i < len(script):
        char = script[i]
        if backslashes and char == "\\":
            i += 2
            continue
        if char == quote:
            if script.startswith(quote, i + 1):
                i += 2
                continue
            return i + 1
        i += 1
    raise MigrationError(f"unterminated {quote}-quoted text starting at character {at}")


def _skip_block_comment(script: str, at: int) -> int:
    depth, i = 0, at
    while i < len(script):
        if script.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif script.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise MigrationError(f"unterminated /* comment starting at character {at}")


def split_statements(script: str) -> tuple[str, ...]:
    """A SQL script as its statements, without the ``;`` and the comments between statements.

    Understands what a step may contain: ``--`` and nested ``/* */`` comments, '…' literals
    (``E'…'`` with backslashes), "…" identifiers and ``$tag$…$tag$`` bodies, so a function
    body's semicolons stay inside its statement.
    """
    statements: list[str] = []
    start: int | None = None
    i, end = 0, len(script)
    while i < end:
        char = script[i]
        if char.isspace():
            i += 1
        elif script.startswith("--", i):
            newline = script.find("\n", i)
            i = end if newline < 0 else newline + 1
        elif script.startswith("/*", i):
            i = _skip_block_comment(script, i)
        elif char == ";":
            if start is not None:
                statements.append(script[start:i].strip())
            start, i = None, i + 1
        else:
            start = i if start is None else start
            previous = script[i - 1] if i else " "
            tag = _DOLLAR_TAG.match(script, i) if char == "$" else None
            if char in "'\"":
                escaped = char == "'" and previous in "eE" and (i < 2 or not (script[i - 2].isalnum()
                                                                             or script[i - 2] == "_"))
                i = _skip_quoted(script, i, char, escaped)
            elif tag is not None and not (previous.isalnum() or previous == "_"):
                close = script.find(tag.group(0), tag.end())
                if close < 0:
                    raise MigrationError(f"unterminated {tag.group(0)} body starting at character {i}")
                i = close + len(tag.group(0))
            else:
                i += 1
    if start is not None:
        statements.append(script[start:].strip())
    return tuple(statements)


@dataclass(frozen=True, slots=True)
class Step:
    """One migration file: ``NNNN_name.sql`` as its version, name and statements."""

    version: int
    name: str
    file: str
    statements: tuple[str, ...]

    @property
    def record_sql(self) -> str:
        """The INSERT that records this step (as ``--dry-run`` prints it; names are [a-z0-9_])."""
        return f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ({self.version}, '{self.name}')"


def load_steps(folder: Traversable) -> tuple[Step, ...]:
    """Every ``NNNN_name.sql`` of ``folder``, in version order: versions 1, 2, … without gaps or
    duplicates (two branches that both added ``0006_…`` fail here, not in a database)."""
    found: dict[int, Step] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: a migration file is named NNNN_name.sql "
                                 "(four digits, then a lower-case name of letters, digits and _)")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migration files have version {version}: {found[version].file} and {entry.name}")
        try:
            statements = split_statements(entry.read_text(encoding="utf-8"))
        except MigrationError as exc:
            raise MigrationError(f"{entry.name}: {exc}") from None
        if not statements:
            raise MigrationError(f"{entry.name}: no SQL statement")
        for statement in statements:
            if _NOT_IN_A_TRANSACTION.search(statement):
                raise MigrationError(f"{entry.name}: steps run in one transaction, so a step cannot hold "
                                     f"{_first_line(statement)!r}")
        found[version] = Step(version, match.group(2), entry.name, statements)
    versions = sorted(found)
    if not versions:
        raise MigrationError(f"no migration files (NNNN_name.sql) in {folder}")
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3, … without gaps; the files have {versions}")
    return tuple(found[v] for v in versions)


def migrations_folder() -> Traversable:
    return resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_FOLDER)


STEPS: tuple[Step, ...] = load_steps(migrations_folder())
LATEST_VERSION = STEPS[-1].version


# -- what a statement does ----------------------------------------------------------------------
_CREATES = re.compile(
    r"^CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?:UNIQUE\s+|UNLOGGED\s+|CONSTRAINT\s+)?"
    r"(?P<kind>TABLE|INDEX|SEQUENCE|VIEW|FUNCTION|PROCEDURE|TRIGGER|TYPE)\s+"
    r"(?P<ifnot>IF\s+NOT\s+EXISTS\s+)?\"?(?P<name>[\w.]+)\"?", re.I)
_RELATIONS = {"table", "index", "sequence", "view"}
CREATED, REPLACED, ALREADY_THERE, RAN = "created", "replaced", "already there", "ran"


def _first_line(statement: str, width: int = 100) -> str:
    line = statement.splitlines()[0].strip() if statement.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def object_of(statement: str) -> tuple[str, str] | None:
    """(kind, name) a statement creates, e.g. ("table", "backlog_items"); None for other statements."""
    match = _CREATES.match(statement)
    return (match.group("kind").lower(), match.group("name")) if match else None


class Connection(Protocol):
    """The part of ``psycopg.Connection`` used here (kept structural: no psycopg import)."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...
    def transaction(self, savepoint_name: str | None = ..., force_rollback: bool = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class Action:
    """One statement of a pending step and what running it does (``verb`` on ``kind name``)."""

    verb: str
    kind: str
    name: str
    statement: str

    @property
    def runs(self) -> bool:
        return self.verb != ALREADY_THERE

    def line(self) -> str:
        """``created table x``, ``replaced function f``, ``already there: index i``, ``ran: DO …``."""
        if self.kind and self.verb != ALREADY_THERE:
            return f"{self.verb} {self.kind} {self.name}"
        return f"{self.verb}: {self.kind} {self.name}" if self.kind else f"{self.verb}: {self.name}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    step: Step
    actions: tuple[Action, ...]


@dataclass(slots=True)
class Plan:
    """What ``migrate`` will run (or ran): the pending steps, nothing for an up-to-date database."""

    recorded: dict[int, str] = field(default_factory=dict)
    preamble: list[Action] = field(default_factory=list)  # creating schema_migrations itself
    steps: list[StepPlan] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)  # recorded versions no step file defines

    @property
    def versions(self) -> list[Step]:
        return [p.step for p in self.steps]

    def _actions(self) -> Iterable[Action]:
        yield from self.preamble
        for p in self.steps:
            yield from p.actions

    @property
    def created(self) -> list[tuple[str, str]]:
        return [(a.kind, a.name) for a in self._actions() if a.verb == CREATED]

    @property
    def existing(self) -> list[tuple[str, str]]:
        return [(a.kind, a.name) for a in self._actions() if a.verb == ALREADY_THERE]

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps and not self.preamble

    @property
    def version(self) -> int:
        """The schema version once the plan has run (the newest recorded or planned step)."""
        return max([*self.recorded, *(p.step.version for p in self.steps)], default=0)


def _exists(conn: Connection, kind: str, name: str) -> bool:
    probe = "to_regclass" if kind in _RELATIONS else "to_regtype" if kind == "type" else "to_regproc"
    row = conn.execute(f"SELECT {probe}(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def recorded_versions(conn: Connection) -> dict[int, str] | None:
    """version → name of the steps this database has applied; None without ``schema_migrations``."""
    if not _exists(conn, "table", MIGRATIONS_TABLE):
        return None
    return {int(v): str(n) for v, n in conn.execute(f"SELECT version, name FROM {MIGRATIONS_TABLE}").fetchall()}


def _actions(conn: Connection, statements: Sequence[str], planned: set[tuple[str, str]]) -> tuple[Action, ...]:
    """What each statement will do, given the objects the database and earlier statements have."""
    actions = []
    for statement in statements:
        match = _CREATES.match(statement)
        if match is None:
            actions.append(Action(RAN, "", _first_line(statement), statement))
            continue
        kind, name = match.group("kind").lower(), match.group("name")
        checkable = kind in _RELATIONS or kind in {"type", "function", "procedure"}
        there = (kind, name) in planned or (checkable and _exists(conn, kind, name))
        if there and match.group("ifnot"):
            verb = ALREADY_THERE
        else:
            verb = REPLACED if there and match.group("replace") else CREATED
        planned.add((kind, name))
        actions.append(Action(verb, kind, name, statement))
    return tuple(actions)


def plan(conn: Connection, steps: Sequence[Step] | None = None) -> Plan:
    """What ``migrate`` would run on this database (only reads it).

    Raises ``MigrationError`` when a recorded version carries another name than its step file:
    the database was migrated from other files (two branches that both numbered a step N).
    """
    steps = STEPS if steps is None else steps
    recorded = recorded_versions(conn)
    result = Plan(recorded=recorded or {})
    planned: set[tuple[str, str]] = set()
    if recorded is None:
        result.preamble = list(_actions(conn, [MIGRATIONS_DDL], planned))
    by_version = {s.version: s for s in steps}
    for version, name in sorted(result.recorded.items()):
        step = by_version.get(version)
        if step is None:
            result.unknown.append(version)
        elif step.name != name:
            raise MigrationError(f"{MIGRATIONS_TABLE} records version {version} as {name!r}, but step file "
                                 f"{step.file} is {step.name!r}: this database was migrated from other step files")
    for step in steps:
        if step.version not in result.recorded:
            result.steps.append(StepPlan(step, _actions(conn, step.statements, planned)))
    return result


def migrate(conn: Connection, steps: Sequence[Step] | None = None) -> Plan:
    """Run the pending steps (none on an up-to-date database) in one transaction under the
    migration lock, recording each; returns what it did.

    Works on an autocommit connection (``transaction()`` opens one) and inside an open one. A
    failing statement carries a note naming its step and file.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        result = plan(conn, steps)  # after the lock: a migrator that waited sees the other's work
        for action in result.preamble:
            conn.execute(action.statement)
        for pending in result.steps:
            for action in (a for a in pending.actions if a.runs):
                try:
                    conn.execute(action.statement)
                except Exception as exc:
                    exc.add_note(f"in step {pending.step.version} {pending.step.name} ({pending.step.file}): "
                                 f"{_first_line(action.statement)}")
                    raise
            conn.execute(RECORD_SQL, (pending.step.version, pending.step.name))
    return result


def backlog_schema_missing(conn: Connection) -> list[str]:
    """The backlog tables and columns that are not there (empty: the stores can run)."""
    missing = [t for t in BACKLOG_TABLES if not _exists(conn, "table", t)]
    if missing:
        return missing
    found = {(str(t), str(c)) for t, c in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ANY(%s)", (sorted({t for t, _ in BACKLOG_COLUMNS}),)).fetchall()}
    return [f"{t}.{c}" for t, c in BACKLOG_COLUMNS if (t, c) not in found]
