"""Alerts over a store: what fires now, for the dashboard and the notifier."""

from __future__ import annotations

from typing import Any

from services.router.alerts.rules import OVERDUE_BY_PRIORITY, AlertsPolicy, evaluate
from services.router.domain.queries import MAX_PAGE
from services.router.stores.base import BacklogStore


def current_alerts(
    store: BacklogStore, policy: AlertsPolicy, *, env: str | None, dashboard: dict[str, Any]
) -> list[dict[str, Any]]:
    """Evaluate the rules on a dashboard, asking the store only for the overdue priorities used."""
    wanted = {OVERDUE_BY_PRIORITY[r.metric] for r in policy.rules if r.metric in OVERDUE_BY_PRIORITY}
    overdue = {p: store.overdue_ids(env, p, limit=MAX_PAGE) for p in wanted}
    return evaluate(policy.rules, env=env, dashboard=dashboard, overdue_by_priority=overdue)
