"""What the templates show, computed from action results — pure functions, no I/O.

Kept apart from the routes so the numbers a page shows can be tested without a browser, and
the templates stay free of logic beyond loops and conditionals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from services.router.domain.enums import ALL_PRIORITIES, ALL_STATUSES, PRIORITY_RANK, Status
from services.router.domain.transitions import allowed_moves

STATUS_LABELS = {"open": "Open", "in_progress": "In progress", "blocked": "Blocked", "done": "Done",
                 "canceled": "Canceled"}
STREAKS_SHOWN = 10
LINK_SCHEMES = ("https://", "http://")


@dataclass(frozen=True, slots=True)
class Tile:
    key: str
    label: str
    value: int
    tone: str  # css modifier: neutral, danger, warn, ok, muted
    href: str


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    label: str
    value: int
    percent: float
    tone: str


def items_url(**filters: Any) -> str:
    """``/items?…`` with the non-empty filters, in a stable order."""
    query = {k: ("true" if v is True else "false" if v is False else v) for k, v in filters.items()
             if v is not None and v != ""}
    return "/items" + (f"?{urlencode(query)}" if query else "")


def tiles(board: dict[str, Any], env: str | None) -> list[Tile]:
    """The runbook's numbers (RUNBOOK §6): total, overdue, and each status count."""
    counts = board["status_counts"]
    overdue = int(board["overdue_count"])
    out = [
        Tile("total", "Total", int(board["total"]), "neutral", items_url(env=env)),
        Tile("overdue", "Overdue", overdue, "danger" if overdue else "ok", items_url(env=env, overdue=True)),
    ]
    for status in ALL_STATUSES:
        value = int(counts.get(status, 0))
        tone = "warn" if status == Status.BLOCKED and value else "muted" if status in ("done", "canceled") \
            else "neutral"
        out.append(Tile(status, STATUS_LABELS[status], value, tone, items_url(env=env, status=status)))
    return out


def bars(counts: dict[str, int], order: tuple[str, ...], *, labels: dict[str, str] | None = None) -> list[Bar]:
    """Horizontal bars scaled to the largest count (an empty backlog draws empty bars, not a division error)."""
    top = max((int(counts.get(k, 0)) for k in order), default=0)
    return [Bar(k, (labels or {}).get(k, k), int(counts.get(k, 0)),
                round(100.0 * int(counts.get(k, 0)) / top, 1) if top else 0.0, k.lower())
            for k in order]


def priority_bars(board: dict[str, Any]) -> list[Bar]:
    return bars(board["priority_counts"], ALL_PRIORITIES)


def status_bars(board: dict[str, Any]) -> list[Bar]:
    return bars(board["status_counts"], ALL_STATUSES, labels=STATUS_LABELS)


def days_overdue(due_date: str, today: date) -> int:
    return (today - date.fromisoformat(due_date)).days


def service_rows(board: dict[str, Any], env: str | None) -> list[dict[str, Any]]:
    top = max((int(s["count"]) for s in board["top_services"]), default=0)
    return [{**s, "percent": round(100.0 * int(s["count"]) / top, 1) if top else 0.0,
             "href": items_url(env=env, service=s["service"], active=True)} for s in board["top_services"]]


def weeks_open(record: dict[str, Any]) -> int:
    value = (record.get("meta") or {}).get("weeks_open")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def carry_over_streaks(items: list[dict[str, Any]], *, limit: int = STREAKS_SHOWN) -> list[dict[str, Any]]:
    """The longest-open problems: active items carried over at least once (``meta.weeks_open`` ≥ 2).

    Each week's generation makes a new item that records the streak, while earlier weeks' items
    may still be open; one row per env/service/category (its longest streak) keeps the table
    about problems, not about copies.
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in items:
        weeks = weeks_open(record)
        if weeks < 2:
            continue
        key = (record["env"], record["service"], record["category"])
        if key not in best or weeks > weeks_open(best[key]):
            best[key] = record
    rows = sorted(best.values(), key=lambda r: (-weeks_open(r), PRIORITY_RANK.get(r["priority"], 9), r["id"]))
    return [{**r, "weeks_open": weeks_open(r), "carried_from": (r.get("meta") or {}).get("carried_from")}
            for r in rows[:limit]]


def event_detail(event: dict[str, Any]) -> str:
    """One line saying what an event changed."""
    meta = event.get("meta") or {}
    kind = event.get("type")
    if kind in ("status_changed", "owner_changed") and "from" in meta and "to" in meta:
        return f"{STATUS_LABELS.get(meta['from'], meta['from'])} → {STATUS_LABELS.get(meta['to'], meta['to'])}"
    if kind == "updated" and meta.get("fields"):
        return "changed " + ", ".join(str(f) for f in meta["fields"])
    if kind == "created":
        parts = [f"{k} {meta[k]}" for k in ("priority", "owner") if meta.get(k)]
        return ", ".join(parts)
    return ""


def status_choices(current: str) -> list[dict[str, str]]:
    """The moves the transition table allows from ``current`` (DESIGN §3), for the status form."""
    return [{"value": s, "label": STATUS_LABELS[s]} for s in allowed_moves(Status(current))]


def meta_rest(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta keys not already shown as their own field."""
    return {k: v for k, v in meta.items() if k not in ("owner_reason", "weeks_open", "carried_from", "evidence_urls")}


SYNC_LABELS = {"in_sync": "in sync", "pending": "changes not pushed yet", "retrying": "retrying",
               "parked": "parked", "off": "not synced (unlinked)", "unknown": "sync state unknown"}


def tracker_link(tracker: dict[str, Any] | None) -> dict[str, Any] | None:
    """The item's remote issue for the page: a link only for an http(s) address, its sync state in words."""
    if not tracker:
        return None
    url = str(tracker.get("url") or "")
    sync = str(tracker.get("sync") or "unknown")
    label = " ".join(str(tracker[k]) for k in ("tracker", "key") if tracker.get(k)) or "tracker sync"
    return {"label": label, "href": url if url.lower().startswith(LINK_SCHEMES) else None, "sync": sync,
            "sync_label": SYNC_LABELS.get(sync, sync), "reason": tracker.get("reason") or tracker.get("error"),
            "remote_status": tracker.get("remote_status")}

