"""When to send what: the alert notification state machine — pure, no I/O.

Per (env, rule) it sends once when a rule starts firing, again only when its item set grows or
the cool-down has passed, and once "resolved" when it stops: never a page every 15 minutes for
the same thing. Per-owner reminders are idempotent queries (one per owner per UTC day), so a
missed run does not skip a reminder and a re-run does not repeat it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.router.clock import iso_z, parse_utc
from services.router.domain.models import new_id

State = dict[str, Any]


def empty_state() -> State:
    return {"alerts": {}, "reminders": {}, "outbox": [], "escalations": {}, "escalation_events": []}


def notification(kind: str, now: datetime, **fields: Any) -> dict[str, Any]:
    return {"id": new_id("nt_"), "kind": kind, "created_at": iso_z(now), **fields}


def alert_transitions(
    state: State, *, env: str, alerts: list[dict[str, Any]], rule_names: list[str], now: datetime,
    cooldown: timedelta,
) -> list[dict[str, Any]]:
    """Update ``state['alerts']`` for one env and return the notifications it calls for."""
    out: list[dict[str, Any]] = []
    firing = {a["rule"]: a for a in alerts}
    for rule in rule_names:
        key = f"{env}:{rule}"
        before = state["alerts"].get(key)
        alert = firing.get(rule)
        if alert is None:
            if before is not None:
                out.append(notification(
                    "resolved", now, env=env, rule=rule, severity=before["severity"], action=before["action"],
                    target=before["target"], message=f"{env}: resolved — {rule} no longer fires", items=[]))
                del state["alerts"][key]
            continue
        items = sorted(set(alert["items"]))
        kind: str | None
        if before is None:
            kind = "firing"
        elif not set(items) <= set(before["items"]):
            kind = "grown"
        elif now - parse_utc(before["last_sent"]) >= cooldown:
            kind = "repeat"
        else:
            kind = None
        if kind is not None:
            out.append(notification(kind, now, **{k: alert[k] for k in (
                "env", "rule", "severity", "action", "target", "message", "items", "value")}))
        state["alerts"][key] = {
            "severity": alert["severity"], "action": alert["action"], "target": alert["target"], "items": items,
            "since": before["since"] if before else iso_z(now),
            "last_sent": iso_z(now) if kind is not None or before is None else before["last_sent"],
        }
    return out


def owner_reminders(state: State, *, overdue: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """One digest per owner per UTC day listing their overdue items."""
    today = now.date().isoformat()
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for item in overdue:
        by_owner.setdefault(item["owner"], []).append(item)
    out = []
    for owner, items in sorted(by_owner.items()):
        if state["reminders"].get(owner) == today:
            continue
        lines = [f"{i['due_date']} {i['priority']} {i['env']}/{i['service']}: {i['title']} ({i['id']})" for i in items]
        out.append(notification(
            "reminder", now, owner=owner, target=owner, severity="info", action="notify",
            message=f"{owner}: {len(items)} overdue backlog item(s)\n" + "\n".join(lines),
            items=[i["id"] for i in items]))
        state["reminders"][owner] = today
    return out
