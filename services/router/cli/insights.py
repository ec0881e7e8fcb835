"""``backlog trends``, ``backlog problems``, ``backlog owner`` and ``backlog due-date``."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from services.router.cli.app import JsonOpt, app, console, run
from services.router.cli.items import parse_date
from services.router.cli.render import PRIORITY_STYLE, render_write


def render_trends(result: dict[str, Any]) -> None:
    scope = " / ".join(x for x in (result.get("env") or "all envs", result.get("service")) if x)
    table = Table(title=f"Backlog trends — {scope} (week ends are Sundays 23:59:59 UTC)")
    for col in ("week", "opened", "closed", "open at end", "overdue at end", "P0 open at end"):
        table.add_column(col, justify="left" if col == "week" else "right")
    for w in result["weeks"]:
        table.add_row(w["week"], str(w["opened"]), str(w["closed"]), str(w["open_at_end"]), str(w["overdue_at_end"]),
                      str(w["p0_open_at_end"]))
    console.print(table)


def render_problems(result: dict[str, Any]) -> None:
    table = Table(title=f"Problems — {result['env']} ({result['total']})")
    for col in ("pri", "service", "category", "weeks", "since", "items", "oldest due", "owner", "overdue"):
        table.add_column(col)
    for p in result["problems"]:
        pri = p["priority"]
        table.add_row(f"[{PRIORITY_STYLE.get(pri, '')}]{pri}[/]", p["service"], p["category"], str(p["weeks_open"]),
                      p["first_week"], str(len(p["items"])), p["oldest_due_date"] or "-", p["owner"],
                      "[bold red]yes[/]" if p["overdue"] else "no")
    console.print(table)
    if result["total"] > len(result["problems"]):
        console.print(f"showing {len(result['problems'])} of {result['total']} (--limit)")


@app.command()
def trends(
    env: str | None = typer.Option(None, help="default: every env"), service: str | None = typer.Option(None),
    weeks: int = typer.Option(12, help="1-104 ISO weeks, ending with this one"), as_json: bool = JsonOpt,
) -> None:
    """Opened, closed, open, overdue and P0 items per ISO week, oldest first."""
    run("trends", dict(env=env, service=service, weeks=weeks), as_json=as_json, render=render_trends)


@app.command()
def problems(
    env: str = typer.Option("prod"), service: str | None = typer.Option(None), limit: int = typer.Option(100),
    as_json: bool = JsonOpt,
) -> None:
    """One row per problem (service, category) with active items: its weekly items folded together."""
    run("problems", dict(env=env, service=service, limit=limit), as_json=as_json, render=render_problems)


@app.command()
def owner(
    item_id: str = typer.Argument(..., metavar="ID"), new_owner: str = typer.Argument(..., metavar="OWNER"),
    message: str = typer.Option("", "--message", "-m"), dry_run: bool = typer.Option(False, "--dry-run"),
    as_json: bool = JsonOpt,
) -> None:
    """Give an item another owner (refused on done or canceled items)."""
    run("set_owner", dict(id=item_id, owner=new_owner, message=message, dry_run=dry_run), as_json=as_json,
        render=render_write)


@app.command("due-date")
def due_date(
    item_id: str = typer.Argument(..., metavar="ID"), day: str = typer.Argument(..., metavar="YYYY-MM-DD|none"),
    message: str = typer.Option("", "--message", "-m"), dry_run: bool = typer.Option(False, "--dry-run"),
    as_json: bool = JsonOpt,
) -> None:
    """Move an item's due date, or clear it with `none` (refused on done or canceled items)."""
    params: dict[str, Any] = dict(id=item_id, message=message, dry_run=dry_run)
    run("set_due_date", {**params, "due_date": None if day.lower() == "none" else parse_date(day)}, as_json=as_json,
        render=render_write, keep_none=("due_date",))
