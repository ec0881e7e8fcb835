#!/usr/bin/env python3
"""Create or update the Backlog Bridge schema in Postgres (RUNBOOK §2). Idempotent.

    python3 ops/scripts/migrate_backlog_postgres.py --dsn "postgresql://user:pass@host/daarion" --dry-run
    python3 ops/scripts/migrate_backlog_postgres.py --dsn "postgresql://user:pass@host/daarion"

The DSN comes from ``--dsn``, else ``$BACKLOG_POSTGRES_DSN``, else ``$POSTGRES_DSN``. The steps
are ``services/router/stores/pg_schema.py`` (the same definitions the stores and tests use):
``--dry-run`` connects read-only and prints the SQL an apply would run; an apply runs it in one
transaction and prints what it created and what was already there. A password is never printed,
not even inside a driver's error message.

Run from the repository root with the system ``python3``: the script puts the repository on
``sys.path`` and, when that interpreter lacks psycopg but the project's ``.venv`` has it, re-runs
itself under ``.venv/bin/python`` — so the runbook's command works as written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from services.router.stores import pg_schema  # noqa: E402  (standard library only)
from services.router.stores.pg_dsn import describe_error, redact_dsn  # noqa: E402

EXIT_OK = 0
EXIT_FAILED = 1  # the server refused a statement (e.g. no CREATE privilege); nothing was changed
EXIT_USAGE = 2  # no DSN, or a DSN that does not parse
EXIT_NO_DRIVER = 3  # psycopg is not installed for this interpreter (nor in the project's .venv)
EXIT_UNREACHABLE = 4  # cannot connect: server down, wrong host/port, wrong database, auth failed
EXIT_BAD_ENV = 6  # $BACKLOG_POSTGRES_DSN / $POSTGRES_DSN does not parse (the code every command uses for it)

REEXEC_GUARD = "BACKLOG_MIGRATE_REEXEC"
EPILOG = """\
exit codes: 0 ok, 1 a statement failed (nothing changed), 2 usage / bad --dsn,
            3 psycopg missing, 4 cannot connect (server, database or credentials),
            6 $BACKLOG_POSTGRES_DSN / $POSTGRES_DSN is not a DSN"""


def fail(code: int, message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


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


def resolve_dsn(cli: str | None) -> tuple[str, str]:
    for value, source in ((cli, "--dsn"), (os.environ.get("BACKLOG_POSTGRES_DSN"), "$BACKLOG_POSTGRES_DSN"),
                          (os.environ.get("POSTGRES_DSN"), "$POSTGRES_DSN")):
        if value:
            return value, source
    fail(EXIT_USAGE, "no DSN: pass --dsn or set BACKLOG_POSTGRES_DSN or POSTGRES_DSN")


def dry_run(conn: Any) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        plan = pg_schema.plan(conn)
    if plan.nothing_to_do:
        print(f"-- nothing to do: schema is at version {pg_schema.LATEST_VERSION}, "
              f"all {len(plan.existing)} objects already there")
        return
    print(f"-- would run ({len(plan.created)} objects to create, {len(plan.existing)} already there):")
    print("BEGIN;")
    for statement in plan.sql:
        print(f"{statement};")
    print("COMMIT;")
    for kind, name in plan.existing:
        print(f"-- already there: {kind} {name}")
    print("-- dry run: nothing was changed")


def apply(conn: Any) -> None:
    plan = pg_schema.migrate(conn)
    for kind, name in plan.created:
        print(f"created {kind} {name}")
    for kind, name in plan.existing:
        print(f"already there: {kind} {name}")
    for step in plan.versions:
        print(f"recorded schema version {step.version} ({step.name})")
    if plan.nothing_to_do:
        print(f"nothing to do: schema is at version {pg_schema.LATEST_VERSION}")
    else:
        print(f"done: schema is at version {pg_schema.LATEST_VERSION}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="Postgres DSN (default: $BACKLOG_POSTGRES_DSN, then $POSTGRES_DSN)")
    parser.add_argument("--dry-run", action="store_true", help="print the SQL an apply would run; change nothing")
    parser.add_argument("--connect-timeout", type=int, default=5, help="seconds to wait for the server (default 5)")
    args = parser.parse_args(argv)
    dsn, source = resolve_dsn(args.dsn)
    psycopg = load_driver()
    shown = redact_dsn(dsn)
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception as exc:
        if source == "--dsn":
            fail(EXIT_USAGE, f"invalid DSN {shown}: {describe_error(exc, dsn)}")
        fail(EXIT_BAD_ENV, f"{source.lstrip('$')}: not a valid Postgres DSN ({describe_error(exc, dsn)}); "
                           "accepted: postgresql://user:pass@host:5432/db or 'host=… dbname=…'")
    try:
        conn = psycopg.connect(dsn, connect_timeout=max(args.connect_timeout, 2), autocommit=True)
    except psycopg.Error as exc:
        fail(EXIT_UNREACHABLE, f"cannot connect to {shown}: {describe_error(exc, dsn)}")
    with conn:
        print(f"{'dry run against' if args.dry_run else 'migrating'} {shown} (from {source})")
        try:
            dry_run(conn) if args.dry_run else apply(conn)
        except psycopg.OperationalError as exc:
            fail(EXIT_UNREACHABLE, f"lost the connection to {shown}: {describe_error(exc, dsn)}")
        except psycopg.Error as exc:
            fail(EXIT_FAILED, f"migration failed, nothing was changed: {describe_error(exc, dsn)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
