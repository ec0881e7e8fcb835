"""The lazy expiry of accepted risks: ``acceptance_expired`` written once, by whoever meets it first.

Counting needs no write (``domain.acceptance``: from the day after ``until`` the item is overdue
again by date alone); this records it — the event, and the restarted due date when the
acceptance carries one — as a revision planned under the item's lock, so two jobs or replicas
meeting the same expired acceptance write one event. The jobs run ``expire_acceptances`` first
(``backlog_alerts`` every 15 minutes, generation, cleanup); reading an item's timeline, or
accepting it again, records its own.
"""

from __future__ import annotations

import logging
from datetime import date

from services.router.domain import acceptance
from services.router.domain.revisions import Revision
from services.router.errors import BacklogError
from services.router.stores.base import BacklogStore
from services.router.tools.context import ToolContext

log = logging.getLogger("backlog.lifecycle")

EXPIRY_ACTOR = "system"


def expire_one(store: BacklogStore, item_id: str, today: date) -> bool:
    """Record one item's expired acceptance (True when this call wrote the event)."""
    result = store.revise(item_id, Revision(kind="expire_acceptance", today=today), actor=EXPIRY_ACTOR)
    return result.action == "updated"


def expire_acceptances(ctx: ToolContext, *, dry_run: bool = False) -> list[str]:
    """Every acceptance whose ``until`` has passed: its ``acceptance_expired`` event written once.
    The ids (to be) expired; a failure on one item is logged and left for the next run."""
    today = ctx.clock.now().date()
    due = [r["id"] for r in ctx.store.accepted_items() if acceptance.is_expired(r, today)]
    if dry_run:
        return due
    done: list[str] = []
    for item_id in due:
        try:
            if expire_one(ctx.store, item_id, today):
                done.append(item_id)
        except BacklogError as exc:
            log.warning("could not record the expired acceptance of %s (will retry): %s", item_id, exc.message)
    if done:
        log.info("acceptances expired: %s", ", ".join(done))
    return done




def expire_if_due(ctx: ToolContext, item_id: str) -> None:
    """One item's expiry, when it is due, as a read meets it; a store that cannot take the write
    now (the Auto store's fallback) leaves it for the jobs."""
    record = ctx.store.get(item_id)
    if record is None or not acceptance.is_expired(record, ctx.clock.now().date()):
        return
    try:
        expire_one(ctx.store, item_id, ctx.clock.now().date())
    except BacklogError as exc:
        log.info("expired acceptance of %s left for the jobs: %s", item_id, exc.message)
