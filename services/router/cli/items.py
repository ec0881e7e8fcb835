"""Item commands: list, show, upsert, status, comment, events, dashboard, cleanup."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import typer

from services.router.cli import render
from services.router.cli.app import JsonOpt, app, fail, run
from services.router.errors import ValidationFailed


@app.command("list")
def list_cmd(
    env: str | None = typer.Option(None), service: str | None = typer.Option(None),
    status: str | None = typer.Option(None), owner: str | None = typer.Option(None),
    priority: str | None = typer.Option(None), category: str | None = typer.Option(None),
    overdue: bool | None = typer.Option(None, "--overdue/--not-overdue"),
    limit: int = typer.Option(50), cursor: str | None = typer.Option(None),
    sort: str | None = typer.Option(None, help="created_at (default), due_date, priority, updated_at; -x descending"),
    search: str | None = typer.Option(None, "--search", "-q", help="a part of the title, any letter case"),
    as_json: bool = JsonOpt,
) -> None:
    """List items (filters are ANDed; pages follow creation order unless --sort)."""
    run("list", dict(env=env, service=service, status=status, owner=owner, priority=priority,
                     category=category, overdue=overdue, limit=limit, cursor=cursor, sort=sort, q=search),
        as_json=as_json, render=render.render_list)


@app.command()
def show(item_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JsonOpt) -> None:
    """Show one item."""
    run("get", {"id": item_id}, as_json=as_json, render=render.render_item)


@app.command()
def events(item_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JsonOpt) -> None:
    """Show an item's audit trail."""
    run("events", {"id": item_id}, as_json=as_json, render=render.render_events)


@app.command()
def upsert(
    env: str = typer.Option(...), service: str = typer.Option(...), category: str = typer.Option(...),
    title: str = typer.Option(...), description: str = typer.Option(""),
    priority: str | None = typer.Option(None), owner: str | None = typer.Option(None),
    due_date: str | None = typer.Option(None, "--due-date", help="YYYY-MM-DD"),
    dedupe_key: str | None = typer.Option(None, "--dedupe-key"),
    evidence: list[str] = typer.Option([], "--evidence"), tag: list[str] = typer.Option([], "--tag"),
    meta: str | None = typer.Option(None, help="JSON object"),
    dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = JsonOpt,
) -> None:
    """Create an item, or update the one with the same dedupe key (owner only if --owner)."""
    params: dict[str, Any] = dict(
        env=env, service=service, category=category, title=title, description=description,
        priority=priority, owner=owner, due_date=parse_date(due_date), dedupe_key=dedupe_key,
        evidence_refs=evidence, tags=tag, meta=parse_meta(meta), dry_run=dry_run,
    )
    run("upsert", params, as_json=as_json, render=render.render_write)


@app.command()
def status(
    item_id: str = typer.Argument(..., metavar="ID"), new_status: str = typer.Argument(..., metavar="STATUS"),
    message: str = typer.Option("", "--message", "-m"), dry_run: bool = typer.Option(False, "--dry-run"),
    as_json: bool = JsonOpt,
) -> None:
    """Move an item to another status (open, in_progress, blocked, done, canceled)."""
    run("set_status", dict(id=item_id, status=new_status, message=message, dry_run=dry_run),
        as_json=as_json, render=render.render_write)


@app.command()
def comment(
    item_id: str = typer.Argument(..., metavar="ID"), message: str = typer.Argument(...),
    dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = JsonOpt,
) -> None:
    """Add a comment to an item's audit trail."""
    run("add_comment", dict(id=item_id, message=message, dry_run=dry_run), as_json=as_json,
        render=render.render_write)


@app.command()
def dashboard(env: str | None = typer.Option(None), as_json: bool = JsonOpt) -> None:
    """Counts by status and priority, overdue items and top services."""
    run("dashboard", {"env": env}, as_json=as_json, render=render.render_dashboard)


@app.command()
def cleanup(
    retention_days: int | None = typer.Option(None, "--retention-days", help="default: the policy's"),
    dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = JsonOpt,
) -> None:
    """Remove done/canceled items older than the retention period (compacts JSONL files)."""
    run("cleanup", dict(retention_days=retention_days, dry_run=dry_run), as_json=as_json,
        render=render.render_cleanup)


def parse_date(value: str | None, option: str = "--due-date") -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        fail(ValidationFailed(f"{option} must be YYYY-MM-DD, got {value!r}", field=option.strip("-").replace("-", "_")))


def parse_meta(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        fail(ValidationFailed(f"--meta is not valid JSON: {exc}", field="meta"))
    if not isinstance(parsed, dict):
        fail(ValidationFailed("--meta must be a JSON object", field="meta"))
    return parsed
