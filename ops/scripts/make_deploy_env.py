#!/usr/bin/env python3
"""Make the two env files compose.yaml reads: ``backlog.env`` (API keys) and ``postgres.env``.

    python3 ops/scripts/make_deploy_env.py            # beside compose.yaml, in the current folder
    python3 ops/scripts/make_deploy_env.py --dir /etc/backlog-bridge

Keys never live in compose.yaml or the image: the routers get every account's key from
``backlog.env`` (the accounts of ``config/rbac.yml``); ``postgres.env`` holds the database password
twice — ``POSTGRES_PASSWORD`` for the postgres container's first start, ``PGPASSWORD`` for the
clients (libpq reads it), so the DSN in compose.yaml carries none. Each value is
``secrets.token_urlsafe(32)``; files are written mode 0600 and an existing file is never
overwritten (delete it first to rotate; the database password is set only on the volume's
first start). Standard library only, so the system ``python3`` runs it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

# The key variables of config/rbac.yml's accounts (admin, scheduler, oncall, readonly, alertmanager).
API_KEY_VARIABLES = (
    "BACKLOG_ADMIN_API_KEY",
    "SCHEDULER_API_KEY",
    "ONCALL_API_KEY",
    "READONLY_API_KEY",
    "ALERTMANAGER_API_KEY",
)
KEYS_FILE = "backlog.env"
POSTGRES_FILE = "postgres.env"


def new_secret() -> str:
    """A URL-safe random value that never looks like a command-line option (no leading ``-``)."""
    while True:
        value = secrets.token_urlsafe(32)
        if not value.startswith("-"):
            return value


def render_keys() -> str:
    lines = ["# Backlog Bridge API keys (config/rbac.yml accounts); read by the routers. Keep secret."]
    lines += [f"{name}={new_secret()}" for name in API_KEY_VARIABLES]
    return "\n".join(lines) + "\n"


def render_postgres() -> str:
    password = new_secret()
    return (
        "# Database password: POSTGRES_PASSWORD sets it on the volume's first start; PGPASSWORD is\n"
        "# what the migration, routers and schedulers send (libpq). Keep both equal. Keep secret.\n"
        f"POSTGRES_PASSWORD={password}\nPGPASSWORD={password}\n"
    )


def write_new(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600; refuse (FileExistsError) if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_deploy_env.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("."),
                        help="folder to write backlog.env and postgres.env in (default: the current one)")
    args = parser.parse_args(argv)
    folder: Path = args.dir
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    targets = [(folder / KEYS_FILE, render_keys), (folder / POSTGRES_FILE, render_postgres)]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing:
        print(f"error: {', '.join(existing)} already exist(s); nothing was written "
              "(delete a file to make it anew)", file=sys.stderr)
        return 1
    for path, render in targets:
        write_new(path, render())
        print(f"wrote {path} (mode 0600)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
