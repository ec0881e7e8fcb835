"""``backlog accept ID --until YYYY-MM-DD --reason TEXT`` and ``backlog unaccept ID``."""

from __future__ import annotations

import typer

from services.router.cli import render
from services.router.cli.app import JsonOpt, app, run
from services.router.cli.items import parse_date


@app.command()
def accept(
    item_id: str = typer.Argument(..., metavar="ID"),
    until: str = typer.Option(..., "--until", help="YYYY-MM-DD: accepted through this day (at most "
                              "lifecycle.max_accept_days ahead)"),
    reason: str = typer.Option(..., "--reason", help="why the risk is accepted (required)"),
    dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = JsonOpt,
) -> None:
    """Accept an item's risk until a date: it keeps its status and counts in no overdue figure, alert,
    reminder or escalation meanwhile; generation makes no new week's item for its problem."""
    run("accept", dict(id=item_id, until=parse_date(until, "--until"), reason=reason, dry_run=dry_run),
        as_json=as_json, render=render.render_write)


@app.command()
def unaccept(item_id: str = typer.Argument(..., metavar="ID"), dry_run: bool = typer.Option(False, "--dry-run"),
             as_json: bool = JsonOpt) -> None:
    """Withdraw an item's risk acceptance: it counts again at once."""
    run("unaccept", dict(id=item_id, dry_run=dry_run), as_json=as_json, render=render.render_write)
