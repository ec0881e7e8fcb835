"""Rich tables for people; the same data goes out as JSON with ``--json``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from services.router.cli.app import console

PRIORITY_STYLE = {"P0": "bold red", "P1": "red", "P2": "yellow", "P3": "dim"}


def items_table(items: list[dict[str, Any]], title: str = "Backlog items") -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("id", "env", "service", "category", "pri", "status", "owner", "due", "week", "title"):
        table.add_column(col, overflow="fold" if col == "title" else "ellipsis")
    for r in items:
        pri = r["priority"]
        table.add_row(
            r["id"], r.get("env", ""), r["service"], r["category"],
            f"[{PRIORITY_STYLE.get(pri, '')}]{pri}[/]", r["status"], r["owner"], r["due_date"] or "-",
            r.get("week") or "-", r["title"],
        )
    return table


def render_list(result: dict[str, Any]) -> None:
    console.print(items_table(result["items"]))
    if result.get("next_cursor"):
        console.print(f"more: --cursor {result['next_cursor']}")


def render_item(item: dict[str, Any]) -> None:
    table = Table(show_header=False, title=item["title"])
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("id", "env", "service", "category", "priority", "status", "owner", "due_date",
                "source", "dedupe_key", "created_at", "updated_at"):
        table.add_row(key, str(item.get(key) if item.get(key) is not None else "-"))
    if item.get("meta", {}).get("owner_reason"):
        table.add_row("owner_reason", str(item["meta"]["owner_reason"]))
    accepted = item.get("accepted")
    if accepted:
        table.add_row("accepted", f"until {accepted.get('until')} by {accepted.get('by')}: {accepted.get('reason')}")
    tracker = item.get("tracker")
    if tracker:
        where = " ".join(str(tracker[k]) for k in ("tracker", "key", "url") if tracker.get(k))
        reason = f": {tracker['reason']}" if tracker.get("reason") else ""
        table.add_row("tracker", f"{where} ({tracker.get('sync')}{reason})")
    table.add_row("evidence", ", ".join(item.get("evidence_refs") or []) or "-")
    table.add_row("tags", ", ".join(item.get("tags") or []) or "-")
    console.print(table)
    if item.get("description"):
        console.print(item["description"], markup=False, highlight=False)


def render_events(result: dict[str, Any]) -> None:
    table = Table(title=f"Events of {result['item_id']}")
    for col in ("ts", "type", "actor", "message"):
        table.add_column(col, overflow="fold")
    for e in result["events"]:
        who = f"{e['actor']} for {e['on_behalf_of']}" if e.get("on_behalf_of") else e["actor"]
        table.add_row(e["ts"], e["type"], who, e["message"])
    console.print(table)


def render_write(result: dict[str, Any]) -> None:
    prefix = "[dry run] would be " if result.get("dry_run") else ""
    item = result.get("item")
    if item is not None:
        console.print(f"{prefix}{result['action']}: {item['id']} {item['status']} {item['owner']} — {item['title']}",
                      markup=False, highlight=False)
    elif result.get("event") is not None:
        event = result["event"]
        console.print(f"{prefix}{event['type']} on {event['item_id']}: {event['message']}", markup=False)


def render_dashboard(d: dict[str, Any]) -> None:
    scope = d.get("env") or "all envs"
    degraded = " [bold red](degraded: JSONL fallback)[/]" if d.get("degraded") else ""
    console.print(f"[bold]Backlog dashboard — {scope}[/] (backend {d.get('backend', '?')}){degraded}")
    summary = Table(show_header=True)
    summary.add_column("total")
    for s in d["status_counts"]:
        summary.add_column(s)
    for p in d["priority_counts"]:
        summary.add_column(p)
    summary.add_column("overdue", style="bold red")
    summary.add_row(str(d["total"]), *map(str, d["status_counts"].values()),
                    *map(str, d["priority_counts"].values()), str(d["overdue_count"]))
    console.print(summary)
    if d["overdue"]:
        table = Table(title=f"Overdue ({d['overdue_count']})")
        for col in ("due", "pri", "service", "category", "status", "owner", "title", "id"):
            table.add_column(col, overflow="fold" if col == "title" else "ellipsis")
        for r in d["overdue"]:
            table.add_row(r["due_date"], r["priority"], r["service"], r["category"], r["status"], r["owner"],
                          r["title"], r["id"])
        console.print(table)
    if d.get("accepted"):
        console.print(f"Accepted risks ({d['accepted_count']}): " + ", ".join(
            f"{r['id']} {r['service']}/{r['category']} until {r['accepted']['until']}" for r in d["accepted"]),
            markup=False, highlight=False)
    if d["top_services"]:
        console.print("Top services (active items): " + ", ".join(
            f"{s['service']} {s['count']}" for s in d["top_services"]))
    for alert in d.get("alerts", []):
        console.print(f"[bold red]ALERT[/] {alert.get('severity')} → {alert.get('target')}: {alert.get('message')}")


def render_cleanup(result: dict[str, Any]) -> None:
    if result.get("skipped"):
        console.print(f"cleanup skipped: {result['reason']}")
    elif result.get("dry_run"):
        console.print(f"[dry run] would remove {result['would_remove']} items (cutoff {result['cutoff']})")
    else:
        console.print(f"Removed {result['removed']} old items (retention {result['retention_days']} days)")
