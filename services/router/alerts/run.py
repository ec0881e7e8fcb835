"""One notifier run (the ``backlog_alerts`` job): evaluate, queue what changed, deliver the outbox.

A notification is queued in the same state write that records why it was sent, then delivered
to every receiver; one that a receiver refused stays queued for that receiver and is retried
on the next run — not lost, and not sent twice to a receiver that already took it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from services.router.alerts.notifier import alert_transitions, owner_reminders
from services.router.alerts.receivers import SLACK_ENV, WEBHOOK_ENV, Receiver
from services.router.alerts.rules import AlertsPolicy
from services.router.alerts.service import current_alerts
from services.router.alerts.state import AlertStateFile
from services.router.clock import Clock
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.stores.base import BacklogStore

log = logging.getLogger("backlog.alerts")
MAX_ATTEMPTS = 500


def overdue_items(store: BacklogStore, env: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = store.list(ItemQuery(env=env, overdue=True, limit=MAX_PAGE, cursor=cursor))
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def run_notifier(
    store: BacklogStore, policy: AlertsPolicy, clock: Clock, *, envs: list[str], receivers: list[Receiver],
    state_file: AlertStateFile, dry_run: bool,
) -> dict[str, Any]:
    now = clock.now()
    with state_file.locked():
        state = state_file.load()
        queued: list[dict[str, Any]] = []
        firing: dict[str, list[dict[str, Any]]] = {}
        for env in envs:
            dashboard = store.dashboard(env)
            alerts = current_alerts(store, policy, env=env, dashboard=dashboard)
            firing[env] = alerts
            queued += alert_transitions(
                state, env=env, alerts=alerts, rule_names=[r.name for r in policy.rules], now=now,
                cooldown=timedelta(minutes=policy.cooldown_minutes))
            if policy.reminders.per_owner_daily:
                queued += owner_reminders(state, overdue=overdue_items(store, env), now=now)
        if dry_run:
            return {"dry_run": True, "firing": firing, "would_send": queued, "receivers": [r.name for r in receivers]}
        if not receivers:
            # Recording these as sent would swallow them: a receiver configured later would stay
            # silent about alerts already firing until they changed or cooled down.
            return {"dry_run": False, "firing": firing, "queued": [], "delivered": 0, "failed": 0,
                    "outbox": len(state["outbox"]), "receivers": [], "skipped": True,
                    "reason": f"no alert receiver configured (set {WEBHOOK_ENV} or {SLACK_ENV}); nothing recorded, "
                              f"{len(queued)} notification(s) wait for one"}
        for note in queued:
            state["outbox"].append({"note": note, "pending": [r.name for r in receivers], "attempts": 0})
        state_file.save(state)  # queued before any delivery: a crash now re-delivers, never forgets
        delivered, failed = deliver(state, receivers)
        state_file.save(state)
    return {"dry_run": False, "firing": firing, "queued": queued, "delivered": delivered, "failed": failed,
            "outbox": len(state["outbox"]), "receivers": [r.name for r in receivers]}


def deliver(state: dict[str, Any], receivers: list[Receiver]) -> tuple[int, int]:
    by_name = {r.name: r for r in receivers}
    delivered = failed = 0
    remaining = []
    for entry in state["outbox"]:
        still = []
        for name in entry["pending"]:
            receiver = by_name.get(name)
            if receiver is None:
                continue  # that receiver is no longer configured
            try:
                receiver.send(entry["note"])
                delivered += 1
            except Exception as exc:  # any failure: keep it for the next run
                failed += 1
                still.append(name)
                log.warning("alert %s to %s failed (%s); will retry", entry["note"]["id"], name, type(exc).__name__)
        entry["pending"] = still
        entry["attempts"] += 1
        if still and entry["attempts"] < MAX_ATTEMPTS:
            remaining.append(entry)
        elif still:
            log.error("giving up on alert %s after %d attempts", entry["note"]["id"], entry["attempts"])
    state["outbox"] = remaining
    return delivered, failed
