"""``backlog signals import FILE.jsonl`` (through ``signals_tool.ingest``) and ``backlog signals list``
(``signals_tool.list``, newest first, with the same filters as the action).

Each line is accepted or rejected on its own (a line that is not JSON is rejected like one that
does not validate), so the command stores every good line and names each bad one by its line
number. Exit code 0 when every line was accepted, 2 when any was rejected (the accepted ones
are stored either way), so a script notices a partial import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from services.router.cli.app import CLI_ACTOR, JsonOpt, app, console, fail, print_json, run
from services.router.errors import BacklogError
from services.router.runtime import Runtime, build_runtime
from services.router.signals.models import MAX_BATCH

signals_app = typer.Typer(name="signals", no_args_is_help=True, help="Platform signals: import and inspect.")
app.add_typer(signals_app)

MAX_REASONS_SHOWN = 50
# The instant each kind describes, as its record spells it (``SignalBase.occurred_at``).
TIME_FIELDS = ("started_at", "starts_at", "at", "created_at", "detected_at")


def read_lines(path: Path) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """``(line number, parsed value)`` for each non-blank line, and rejections for unparseable ones."""
    parsed: list[tuple[int, Any]] = []
    rejected: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                parsed.append((number, orjson.loads(raw)))
            except orjson.JSONDecodeError as exc:
                rejected.append({"line": number, "reason": f"not valid JSON: {exc}"})
    return parsed, rejected


def import_lines(runtime: Runtime, lines: list[tuple[int, Any]], *, dry_run: bool) -> dict[str, Any]:
    """Send the lines in batches; rejections are reported by line number, not batch index."""
    totals = {"accepted": 0, "rejected": 0, "created": 0, "updated": 0, "unchanged": 0}
    rejected: list[dict[str, Any]] = []
    for start in range(0, len(lines), MAX_BATCH):
        chunk = lines[start:start + MAX_BATCH]
        result = runtime.execute(CLI_ACTOR, "signals_tool", "ingest",
                                 {"signals": [value for _, value in chunk], "dry_run": dry_run})
        for key in totals:
            totals[key] += result["counts"][key]
        for r in result["rejected"]:
            rejected.append({"line": chunk[r["index"]][0], **{k: v for k, v in r.items() if k != "index"}})
    return {"dry_run": dry_run, "counts": totals, "rejected": rejected}


@signals_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., metavar="FILE.jsonl", exists=True, dir_okay=False, readable=True),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; store nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Import signals from a JSONL file (one signal object per line); resending a file is harmless."""
    lines, unreadable = read_lines(file)
    runtime: Runtime | None = None
    try:
        runtime = build_runtime()
        result = import_lines(runtime, lines, dry_run=dry_run)
    except BacklogError as exc:
        fail(exc)
    finally:
        if runtime is not None:
            runtime.close()
    result["rejected"] = sorted(unreadable + result["rejected"], key=lambda r: r["line"])
    result["counts"]["rejected"] += len(unreadable)
    if as_json:
        print_json(result)
    else:
        render_import(result)
    if result["rejected"]:
        raise typer.Exit(2)


def render_import(result: dict[str, Any]) -> None:
    c = result["counts"]
    prefix = "dry run: would accept" if result["dry_run"] else "accepted"
    console.print(f"{prefix} {c['accepted']} (created {c['created']}, updated {c['updated']}, "
                  f"unchanged {c['unchanged']}), rejected {c['rejected']}")
    for r in result["rejected"][:MAX_REASONS_SHOWN]:
        what = " ".join(str(r[k]) for k in ("kind", "id") if r.get(k))
        label = f"line {r['line']}" + (f" ({what})" if what else "")
        console.print(f"  {label}: {r['reason']}", markup=False, highlight=False, soft_wrap=True)
    if len(result["rejected"]) > MAX_REASONS_SHOWN:
        console.print(f"  … and {len(result['rejected']) - MAX_REASONS_SHOWN} more (use --json for all)")


@signals_app.command("list")
def list_cmd(
    env: str | None = typer.Option(None, "--env"),
    service: str | None = typer.Option(None, "--service"),
    kind: str | None = typer.Option(None, "--kind", help="incident, alert, slo_breach, followup, deploy or "
                                    "vulnerability"),
    status: str | None = typer.Option(None, "--status", help="open, mitigated, resolved, firing, done or fixed"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Stored signals, newest first; filters are ANDed (`--status` matches kinds that have one)."""
    run("list", {"env": env, "service": service, "kind": kind, "status": status, "limit": limit},
        as_json=as_json, render=render_signals, tool="signals_tool")


def render_signals(result: dict[str, Any]) -> None:
    table = Table("when (UTC)", "kind", "env", "service", "status", "id", "title")
    for s in result["signals"]:
        when = next((str(s[k]) for k in TIME_FIELDS if s.get(k)), "")
        table.add_row(when[:16].replace("T", " "), s["kind"], s["env"], s["service"],
                      str(s.get("status") or s.get("result") or ""), s["id"], str(s.get("title") or ""))
    console.print(table)
    shown = len(result["signals"])
    more = f" (showing the newest {shown}; --limit N for more)" if result["count"] > shown else ""
    console.print(f"{result['count']} signal(s){more}", markup=False, highlight=False)
