"""``backlog serve``: the router HTTP API under uvicorn.

A first local run must be easy and safe at once: when no account key is configured at all,
``serve`` makes a random admin key for this process only, prints it once with a curl line,
and binds 127.0.0.1 — there is never a built-in default key that could leak into production.
The port is bound first: a ``serve`` that cannot listen writes nothing (``--key-file``).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

import typer

from services.router.access.rbac import RbacConfig, load_rbac
from services.router.cli.app import app, fail
from services.router.errors import BacklogError, Conflict, ValidationFailed
from services.router.runtime import Runtime, build_runtime, configure_logging
from services.router.settings import Settings, load_settings
from services.router.stores.gc_pause import freeze_long_lived

LOCAL_HOST = "127.0.0.1"
LOCAL_ADMIN = "admin"
# httptools parses HTTP in C; the event loop is asyncio's own. uvloop served the same requests
# per second but held some connections back for 150 to 350 ms under 50 concurrent clients, which
# put the p99 of GET item at 20 to 120 ms instead of ≈ 14 ms (bench/RESULTS.md).
UVICORN_OPTIONS: dict[str, str] = {"loop": "asyncio", "http": "httptools"}


def server_options(settings: Settings) -> dict[str, Any]:
    """``UVICORN_OPTIONS`` with httptools' protocol under the connection limits (``api/connections.py``)."""
    from services.router.api.connections import guarded_protocol

    http = guarded_protocol(header_timeout_seconds=settings.backlog_header_timeout_seconds,
                            max_connections=settings.backlog_max_connections)
    return {**UVICORN_OPTIONS, "http": http}


def write_key_file(path: Path, env_name: str, key: str) -> None:
    """``NAME=key`` (source it with ``set -a; . ./.local-keys``), readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        os.write(fd, f"{env_name}={key}\n".encode())
    finally:
        os.close(fd)


def local_admin_keys(rbac: RbacConfig, *, host: str, port: int, key_file: Path | None) -> RbacConfig:
    """With no key configured: a random admin key for this process, printed once, 127.0.0.1 only."""
    if rbac.enabled:
        return rbac
    admin = rbac.account(LOCAL_ADMIN)
    if admin is None:
        raise ValidationFailed(f"no API key is configured and {rbac.source} has no {LOCAL_ADMIN!r} account")
    if host != LOCAL_HOST:
        raise ValidationFailed(
            f"no API key is configured: a generated local key serves {LOCAL_HOST} only; "
            f"set {admin.key_env} (and the other accounts' variables) to bind {host}", field="host",
        )
    key = secrets.token_urlsafe(32)
    while key.startswith("-"):  # a key that looks like an option is a trap on a command line
        key = secrets.token_urlsafe(32)
    saved = ""
    if key_file is not None:
        write_key_file(key_file, admin.key_env, key)
        saved = f"  (saved in {key_file}: `set -a; . {key_file}` exports {admin.key_env})"
    typer.echo(f"No API key configured: generated a local {LOCAL_ADMIN} key for this run only: {key}")
    typer.echo(f'Try: curl -H "X-API-Key: {key}" "http://{LOCAL_HOST}:{port}/v1/backlog/dashboard?env=prod"{saved}')
    return rbac.with_keys({LOCAL_ADMIN: key})


def warm_up(runtime: Runtime) -> None:
    """Load the store's index before the first request, then freeze it out of the GC's sight.

    A JSONL backlog of 100k items is millions of long-lived objects; without a freeze (``gc_pause.freeze_long_lived``)
    every full collection walks them all and stalls the single worker for hundreds of ms.
    """
    try:
        runtime.store.dashboard(None)
    except BacklogError as exc:  # the store may be down: serve anyway, /readyz says so
        logging.getLogger("backlog.api").warning("store not ready at start: %s", exc.message)
    freeze_long_lived()


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen before anything is written: a second ``serve`` on a busy port must fail
    without touching the running server's key file (``.local-keys``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server's strerror repeats the address
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"cannot listen on {host}:{port}: {reason}; is another `backlog serve` running there? "
                           f"Pick another port with --port N or BACKLOG_PORT=N (make run PORT=N)",
                           host=host, port=port) from None
        raise ValidationFailed(f"cannot listen on {host}:{port}: {reason}", field="host", port=port) from None


@app.command()
def serve(
    host: str = typer.Option(LOCAL_HOST, help="Interface to bind (0.0.0.0 needs configured keys)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="TCP port (default $BACKLOG_PORT, else 8000)."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log",
                                    help="uvicorn's access log (off: the app logs one line per request)."),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="Also write a generated local key to this file (mode 0600), e.g. .local-keys."
    ),
) -> None:
    """Serve the router API: /v1/tools/execute, /v1/backlog/*, /healthz, /readyz, /metrics, /docs."""
    import uvicorn

    from services.router.app import create_app

    runtime: Runtime | None = None
    sock: socket.socket | None = None
    try:
        settings = load_settings()
        configure_logging("INFO", settings)
        port = port if port is not None else settings.backlog_port
        sock = listen(host, port)  # before the store loads and before any key is written
        runtime = build_runtime(settings)
        warm_up(runtime)
        rbac = load_rbac(runtime.settings.rbac_path)
        generated = not rbac.enabled
        rbac = local_admin_keys(rbac, host=host, port=port, key_file=key_file)
        shown = LOCAL_HOST if host in ("0.0.0.0", "::") else host
        key_hint = "the key above" if generated else "an API key"
        typer.echo(f"Web dashboard: http://{shown}:{port}/ (sign in with {key_hint}); API docs: /docs")
        config = uvicorn.Config(create_app(runtime, rbac), host=host, port=port, access_log=access_log,
                                log_config=None, server_header=False, **server_options(runtime.settings))
        uvicorn.Server(config).run(sockets=[sock])
    except BacklogError as exc:
        fail(exc)
    finally:
        if sock is not None:
            sock.close()
        if runtime is not None:
            runtime.close()
