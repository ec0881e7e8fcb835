#!/usr/bin/env python3
"""Create or update the Backlog Bridge schema in Postgres (RUNBOOK §2). Idempotent.

    python3 ops/scripts/migrate_backlog_postgres.py --dsn "postgresql://user:pass@host/daarion" --dry-run
    python3 ops/scripts/migrate_backlog_postgres.py --dsn "postgresql://user:pass@host/daarion"
    python3 ops/scripts/migrate_backlog_postgres.py --dsn "postgresql://user:pass@host/daarion" --verify

The DSN comes from ``--dsn``, else ``$BACKLOG_POSTGRES_DSN``, else ``$POSTGRES_DSN``. The steps
are the numbered files ``services/router/stores/migrations/NNNN_name.sql`` (``pg_schema`` loads
them; the stores and tests use the same): an apply runs, in one transaction, exactly the steps
``schema_migrations`` does not record — none on an up-to-date database; ``--dry-run`` connects
read-only and prints the pending steps and their SQL; ``--verify`` compares the live schema with
what the recorded steps define and exits 5 naming every difference. A password is never
printed, not even inside a driver's error message.

Run from the repository root with the system ``python3``: the script puts the repository on
``sys.path`` and, when that interpreter lacks psycopg but the project's ``.venv`` has it, re-runs
itself under ``.venv/bin/python`` — so the runbook's command works as written.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EXIT_OK = 0
EXIT_FAILED = 1  # a statement failed, or the step files / recorded versions forbid a run; nothing was changed
EXIT_USAGE = 2  # no DSN, or a DSN that does not parse
EXIT_NO_DRIVER = 3  # psycopg is not installed for this interpreter (nor in the project's .venv)
EXIT_UNREACHABLE = 4  # cannot connect: server down, wrong host/port, wrong database, auth failed
EXIT_DRIFT = 5  # --verify: the live schema differs from what its steps define, or steps are pending
EXIT_BAD_ENV = 6  # $BACKLOG_POSTGRES_DSN / $POSTGRES_DSN does not parse (the code every command uses for it)

REEXEC_GUARD = "BACKLOG_MIGRATE_REEXEC"
EPILOG = """\
exit codes: 0 ok, 1 a statement failed (nothing changed), 2 usage / bad --dsn,
            3 psycopg missing, 4 cannot connect (server, database or credentials),
            5 --verify found drift (listed on stdout), 6 $BACKLOG_POSTGRES_DSN / $POSTGRES_DSN is not a DSN"""


def fail(code: int, message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


try:  # standard library only; fails only when the step files themselves are wrong
    from services.router.dsn import describe_error, redact_dsn
    from services.router.stores import pg_schema, pg_verify
except Exception as exc:  # one line, never a traceback
    fail(EXIT_FAILED, f"cannot load the migration steps: {exc}")


@dataclass(frozen=True, slots=True)
class Options:
    dsn: str
    source: str  # where the DSN came from: --dsn, $BACKLOG_POSTGRES_DSN or $POSTGRES_DSN
    mode: str  # "apply", "dry-run" or "verify"
    connect_timeout_seconds: int


def read_options(argv: list[str] | None) -> Options:
    """The command line and the environment, read in this one place."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="Postgres DSN (default: $BACKLOG_POSTGRES_DSN, then $POSTGRES_DSN)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the pending steps and their SQL; change nothing")
    mode.add_argument("--verify", action="store_true",
                      help="compare the live schema with what its steps define; exit 5 naming any drift")
    parser.add_argument("--connect-timeout", type=int, default=5, help="seconds to wait for the server (default 5)")
    args = parser.parse_args(argv)
    for value, source in ((args.dsn, "--dsn"), (os.environ.get("BACKLOG_POSTGRES_DSN"), "$BACKLOG_POSTGRES_DSN"),
                          (os.environ.get("POSTGRES_DSN"), "$POSTGRES_DSN")):
        if value:
            return Options(value, source, "dry-run" if args.dry_run else "verify" if args.verify else "apply",
                           max(args.connect_timeout, 2))
    fail(EXIT_USAGE, "no DSN: pass --dsn or set BACKLOG_POSTGRES_DSN or POSTGRES_DSN")


def load_driver() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        venv_python = REPO / ".venv" / "bin" / "python"
        in_venv = Path(sys.prefix).resolve() == (REPO / ".venv").resolve()
        if venv_python.exists() and not in_venv and not os.environ.get(REEXEC_GUARD):
            os.environ[REEXEC_GUARD] = "1"
            os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
        fail(EXIT_NO_DRIVER, f"psycopg 3 is not installed for {sys.executable}: run `make install` "
                             "(or `pip install 'psycopg[binary]'`) and retry")
    return psycopg


def steps_text(versions: list[int]) -> str:
    """"step 4", "steps 4-5", "steps 1, 3"."""
    if len(versions) == 1:
        return f"step {versions[0]}"
    contiguous = versions == list(range(versions[0], versions[-1] + 1))
    return f"steps {versions[0]}-{versions[-1]}" if contiguous else "steps " + ", ".join(map(str, versions))


def print_notes(plan: pg_schema.Plan, prefix: str = "") -> None:
    if plan.unknown:
        print(f"{prefix}note: {pg_schema.MIGRATIONS_TABLE} records {steps_text(plan.unknown)}, which no step file "
              "here defines (migrated by newer code?)")


def dry_run(conn: Any) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        plan = pg_schema.plan(conn)
    print_notes(plan, "-- ")
    if plan.nothing_to_do:
        print(f"-- nothing to do: schema is at version {plan.version}")
        return
    print(f"-- would run {steps_text([s.version for s in plan.versions])} ({len(plan.created)} objects to create, "
          f"{len(plan.existing)} already there):")
    print("BEGIN;")
    for action in plan.preamble:
        print(f"{action.statement};")
    for pending in plan.steps:
        print(f"-- step {pending.step.version} {pending.step.name} ({pending.step.file})")
        for action in pending.actions:
            print(f"{action.statement};" if action.runs else f"-- already there: {action.kind} {action.name}")
        print(f"{pending.step.record_sql};")
    print("COMMIT;")
    print("-- dry run: nothing was changed")


def apply(conn: Any) -> None:
    plan = pg_schema.migrate(conn)
    print_notes(plan)
    for action in plan.preamble:
        print(action.line())
    for pending in plan.steps:
        print(f"step {pending.step.version} {pending.step.name} ({pending.step.file}):")
        for action in pending.actions:
            print(action.line())
        print(f"recorded schema version {pending.step.version} ({pending.step.name})")
    if plan.nothing_to_do:
        print(f"nothing to do: schema is at version {plan.version}")
    else:
        print(f"done: schema is at version {plan.version}")


def verify(conn: Any) -> int:
    report = pg_verify.verify(conn)
    for line in report.drift:
        print(f"drift: {line}")
    if not report.ok:
        print(f"error: schema {report.schema!r} differs from its steps in {len(report.drift)} "
              f"{'way' if len(report.drift) == 1 else 'ways'} (listed above)", file=sys.stderr)
        return EXIT_DRIFT
    counted = ", ".join(f"{n} {kind}{'es' if kind == 'index' else 's'}" for kind, n in report.compared.items())
    applied = [s.version for s in report.applied]
    print(f"ok: schema {report.schema!r} matches {steps_text(applied)} (version {applied[-1]}): {counted}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    options = read_options(argv)
    psycopg = load_driver()
    dsn, shown = options.dsn, redact_dsn(options.dsn)
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception as exc:
        if options.source == "--dsn":
            fail(EXIT_USAGE, f"invalid DSN {shown}: {describe_error(exc, dsn)}")
        fail(EXIT_BAD_ENV, f"{options.source.lstrip('$')}: not a valid Postgres DSN ({describe_error(exc, dsn)}); "
                           "accepted: postgresql://user:pass@host:5432/db or 'host=… dbname=…'")
    try:
        conn = psycopg.connect(dsn, connect_timeout=options.connect_timeout_seconds, autocommit=True)
    except psycopg.Error as exc:
        fail(EXIT_UNREACHABLE, f"cannot connect to {shown}: {describe_error(exc, dsn)}")
    heading = {"apply": "migrating", "dry-run": "dry run against", "verify": "verifying"}[options.mode]
    with conn:
        print(f"{heading} {shown} (from {options.source})")
        try:
            if options.mode == "verify":
                return verify(conn)
            dry_run(conn) if options.mode == "dry-run" else apply(conn)
        except pg_schema.MigrationError as exc:
            fail(EXIT_FAILED, f"{exc}; nothing was changed")
        except psycopg.Error as exc:
            if conn.broken:
                fail(EXIT_UNREACHABLE, f"lost the connection to {shown}: {describe_error(exc, dsn)}")
            where = "".join(f" {note}" for note in getattr(exc, "__notes__", ()))
            what = "verify failed" if options.mode == "verify" else "migration failed"
            fail(EXIT_FAILED, f"{what}{where}, nothing was changed: {describe_error(exc, dsn)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
