"""The Typer app, shared options and the one place CLI errors become exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console

from services.router.errors import (
    AuthError,
    BacklogError,
    Conflict,
    Forbidden,
    NotFound,
    PolicyInvalid,
    StoreUnavailable,
    ValidationFailed,
)
from services.router.runtime import Runtime, build_runtime, configure_logging
from services.router.settings import load_settings

app = typer.Typer(
    name="backlog", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Backlog Bridge: an owned, prioritized, deduplicated engineering backlog.",
)
console = Console(width=None if sys.stdout.isatty() else 160)

CLI_ACTOR = "cli"

# Exit codes: one per kind of failure, so scripts can tell them apart.
EXIT_CODES: list[tuple[type[BacklogError], int]] = [
    (ValidationFailed, 2),
    (NotFound, 3),
    (Conflict, 4),
    (StoreUnavailable, 5),
    (PolicyInvalid, 6),  # includes SettingsInvalid: a bad environment variable
    (AuthError, 7),
    (Forbidden, 7),
]

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of tables.")


def exit_code_for(exc: BacklogError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def fail(exc: BacklogError) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback."""
    sys.stderr.write("error: " + " ".join(exc.message.split()) + "\n")
    raise typer.Exit(exit_code_for(exc))


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


def run(
    action: str, params: dict[str, Any], *, as_json: bool, render: Callable[[Any], None],
    tool: str = "backlog_tool", policy: Path | None = None, keep_none: tuple[str, ...] = (),
) -> Any:
    """Execute a tool action as the CLI user and print it as a table or JSON (params that are None
    are left out, except those in ``keep_none``: a null that means something, like no due date)."""
    runtime: Runtime | None = None
    try:
        runtime = build_runtime(policy_path=policy)
        result = runtime.execute(CLI_ACTOR, tool, action,
                                 {k: v for k, v in params.items() if v is not None or k in keep_none})
    except BacklogError as exc:
        fail(exc)
    finally:
        if runtime is not None:
            runtime.close()
    if isinstance(result, dict) and result.get("known_env") is False:  # a misspelt env is not an empty one
        sys.stderr.write(f"warning: {result['warning']}\n")
    if as_json:
        print_json(result)
    else:
        render(result)
    return result


@app.callback()
def _root() -> None:
    """Check the whole environment before any command runs: a bad value is one line and exit 6."""
    try:
        settings = load_settings()
    except BacklogError as exc:
        fail(exc)
    configure_logging(settings=settings)


def main() -> None:
    app()
