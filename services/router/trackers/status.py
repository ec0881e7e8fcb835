"""What the surfaces show about tracker sync: per tracker (``backlog tracker status``, the
``backlog_tracker_*`` metrics) and per item (``GET /v1/backlog/items/{id}``, the item page).

Read-only and cheap: the link store's records only, never a request to a tracker.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from services.router.clock import Clock, parse_utc
from services.router.domain.changes import Record
from services.router.errors import StoreUnavailable
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.stores.tracker_links import SyncWork, TrackerLinkStore
from services.router.trackers.config import TrackersConfig, sync_configured, trackers_path
from services.router.trackers.plan import changed_fields, desired

MAX_LISTED = 50


def sync_off(settings: Settings) -> str:
    path, _ = trackers_path(settings)
    shown = path.relative_to(settings.root) if path.is_relative_to(settings.root) else path
    return (f"tracker sync is off: no trackers file at {shown} (copy config/trackers.example.yml there, or set "
            f"BACKLOG_TRACKERS_PATH)")


def tracker_status(links: TrackerLinkStore, config: TrackersConfig, clock: Clock,
                   tracker: str | None = None) -> list[dict[str, Any]]:
    """Per tracker: linked, pending, parked (with reasons), waiting retries, last success, last error."""
    now = clock.now()
    out: list[dict[str, Any]] = []
    for name in [tracker] if tracker is not None else sorted(config.trackers):
        cfg = config.trackers[name]
        states = Counter(link.state for link in links.links(name))
        work = links.work(name)
        state = links.tracker_state(name)
        parked = [w for w in work if w.parked]
        waiting = [w for w in work if not w.parked and w.kind != "pull"]
        not_before = state.get("not_before")
        out.append({
            "tracker": name, "kind": cfg.kind, "url": cfg.url,
            "linked": states["linked"], "creating": states["creating"], "unlinked": states["unlinked"],
            "pending": int(state.get("pending") or 0), "parked": len(parked), "retrying": len(waiting),
            "scheduled_pulls": sum(1 for w in work if w.kind == "pull"),
            "parked_items": [work_view(w) for w in parked[:MAX_LISTED]],
            "retrying_items": [work_view(w) for w in waiting[:MAX_LISTED]],
            "last_run_at": state.get("last_run_at"), "last_success_at": state.get("last_success_at"),
            "last_error": state.get("last_error"), "last_error_at": state.get("last_error_at"),
            "waiting_until": not_before if not_before and parse_utc(not_before) > now else None,
            "requests": dict(state.get("requests") or {}),
        })
    return out


def work_view(work: SyncWork) -> dict[str, Any]:
    view: dict[str, Any] = {"id": work.item_id, "kind": work.kind, "attempts": work.attempts}
    if work.parked:
        view.update(reason=work.parked_reason, parked_at=work.parked_at)
    else:
        view.update(error=work.last_error, next_attempt_at=work.next_attempt_at)
    return view


def item_tracker(store: BacklogStore, settings: Settings, item: Record) -> dict[str, Any] | None:
    """The item's link and its sync state for ``get``: None when sync is off (no trackers file) or
    the item has neither a link nor an outbox entry."""
    if not sync_configured(settings):
        return None
    try:
        links = link_store_for(store, settings)
        link = links.get_link(str(item["id"]))
        work = next((w for w in links.work() if w.item_id == item["id"] and w.kind != "pull"), None)
    except StoreUnavailable as exc:
        return {"sync": "unknown", "reason": exc.message}
    if link is None and work is None:
        return None
    view: dict[str, Any] = {"tracker": work.tracker if work is not None else None}
    if link is not None:
        view.update(tracker=link.tracker, project=link.project, state=link.state, key=link.remote_key,
                    url=link.url, remote_status=link.remote.get("status"), remote_closed=link.remote.get("closed"),
                    linked_at=link.linked_at, synced_at=link.synced_at)
    if work is not None and work.parked:
        view.update(sync="parked", reason=work.parked_reason, parked_at=work.parked_at)
    elif work is not None:
        view.update(sync="retrying", attempts=work.attempts, error=work.last_error,
                    next_attempt_at=work.next_attempt_at)
    elif link is not None and link.state == "unlinked":
        view.update(sync="off")
    elif link is not None and (link.state == "creating" or changed_fields(desired(item, public_url(settings)),
                                                                            link.pushed)):
        view.update(sync="pending")
    else:
        view.update(sync="in_sync")
    return view


def public_url(settings: Settings) -> str | None:
    return settings.backlog_public_url
