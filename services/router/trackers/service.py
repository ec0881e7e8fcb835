"""Tracker sync as the surfaces call it: sync, status, link and unlink over one backlog store.

Each call reads ``config/trackers.yml`` anew (an edited file applies to the next call) and opens
the link store that goes with the backlog store. Without a trackers file sync is off, and every
call says so plainly (``skipped`` with the reason) — never an error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.router.clock import Clock, iso_z
from services.router.errors import Conflict, NotFound, StoreUnavailable, ValidationFailed
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.stores.tracker_links import TrackerLink
from services.router.trackers.config import TrackersConfig, trackers_config
from services.router.trackers.engine import AdapterFactory, SyncEngine, default_adapter
from services.router.trackers.errors import TrackerError, TrackerPermanent, TrackerRetryable
from services.router.trackers.model import RemoteIssue, TrackerAdapter
from services.router.trackers.plan import remote_state
from services.router.trackers.status import sync_off, tracker_status

LINK_WAIT_SECONDS = 30.0


def engine_for(store: BacklogStore, settings: Settings, clock: Clock,
               adapter_for: AdapterFactory | None = None) -> SyncEngine | None:
    config = trackers_config(settings)
    if config is None:
        return None
    return SyncEngine(store, link_store_for(store, settings), config, clock, public_url=settings.backlog_public_url,
                      adapter_for=adapter_for or default_adapter)


def sync(store: BacklogStore, settings: Settings, clock: Clock, *, tracker: str | None = None,
         dry_run: bool = False, adapter_for: AdapterFactory | None = None) -> dict[str, Any]:
    engine = engine_for(store, settings, clock, adapter_for)
    if engine is None:
        return {"dry_run": dry_run, "skipped": True, "reason": sync_off(settings), "trackers": []}
    return engine.sync(tracker=tracker, dry_run=dry_run)


def status(store: BacklogStore, settings: Settings, clock: Clock, *, tracker: str | None = None) -> dict[str, Any]:
    engine = engine_for(store, settings, clock)
    if engine is None:
        return {"enabled": False, "reason": sync_off(settings), "trackers": []}
    engine.names(tracker)  # an unknown name is a clear error
    return {"enabled": True, "trackers": tracker_status(engine.links, engine.config, clock, tracker)}


def link(store: BacklogStore, settings: Settings, clock: Clock, *, item_id: str, url: str,
         tracker: str | None = None, adapter_for: AdapterFactory | None = None) -> dict[str, Any]:
    """Adopt an existing remote issue for an item; the next sync makes it say what the item says."""
    engine = require(engine_for(store, settings, clock, adapter_for))
    item = store.get(item_id)
    if item is None:
        raise NotFound(f"no backlog item {item_id}", id=item_id)
    name, adapter, key = issue_of(engine, url, tracker)
    try:
        with engine.links.sync_lock(name, wait_seconds=LINK_WAIT_SECONDS) as lock:
            if lock is None:
                raise Conflict(f"a sync of {name} has held its lock for {LINK_WAIT_SECONDS:g} s; try again")
            issue = read_issue(adapter, name, key)
            before = engine.links.get_link(item_id)
            earlier = engine.links.new_comments({item_id: None}).get(item_id, [])  # not sent: only later ones
            mark = max((str(e["id"]) for e in earlier), default=None)
            now = iso_z(clock.now())
            engine.links.put_link(TrackerLink(
                item_id, name, project_of(engine.config, name, issue, item), "linked", issue.key, issue.url,
                remote=remote_state(issue), pushed={}, comments_through=mark, linked_at=now, synced_at=now))
            engine.links.delete_work(name, item_id)
    finally:
        adapter.close()
    replaced = before.url if before is not None and before.remote_key not in (None, issue.key) else None
    return {"linked": True, "id": item_id, "tracker": name, "key": issue.key, "url": issue.url,
            "replaced": replaced, "next_sync": "makes the issue say what the item says: title, description "
                                              "(with the marker), priority, status and assignee"}


def unlink(store: BacklogStore, settings: Settings, clock: Clock, *, item_id: str,
           recreate: bool = False) -> dict[str, Any]:
    """Stop syncing an item (it stays off until linked again); ``recreate``: the next sync opens a
    new issue instead (after its issue was deleted, say). The remote issue itself is left alone."""
    engine = require(engine_for(store, settings, clock))
    found = engine.links.get_link(item_id)
    if found is None or (found.state == "unlinked" and not recreate):
        raise NotFound(f"{item_id} is not linked to a tracker issue", id=item_id)
    with engine.links.sync_lock(found.tracker, wait_seconds=LINK_WAIT_SECONDS) as lock:
        if lock is None:
            raise Conflict(f"a sync of {found.tracker} has held its lock for {LINK_WAIT_SECONDS:g} s; try again")
        if recreate:
            engine.links.delete_link(item_id)
        else:
            engine.links.put_link(replace(found, state="unlinked", remote_key=None, remote={}, pushed={}))
        engine.links.delete_work(found.tracker, item_id)
    return {"unlinked": True, "id": item_id, "tracker": found.tracker, "key": found.remote_key, "url": found.url,
            "next_sync": "creates a new issue" if recreate else "leaves the item alone until it is linked again"}


def require(engine: SyncEngine | None) -> SyncEngine:
    if engine is None:
        raise Conflict("tracker sync is off: there is no trackers file (config/trackers.yml or BACKLOG_TRACKERS_PATH)")
    return engine


def issue_of(engine: SyncEngine, url: str, tracker: str | None) -> tuple[str, TrackerAdapter, str]:
    """The configured tracker whose issue URL this is, its adapter and the issue key."""
    problems: list[str] = []
    for name in engine.names(tracker):
        adapter = engine.adapter_for(name, engine.config.trackers[name], lambda _: None)
        try:
            return name, adapter, adapter.key_for_url(url)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            adapter.close()
    raise ValidationFailed(f"url: not an issue of a configured tracker ({'; '.join(problems)})", field="url")


def read_issue(adapter: TrackerAdapter, name: str, key: str) -> RemoteIssue:
    """The issue, or the tracker's refusal as an error the surfaces know (404, 503, 422)."""
    try:
        return adapter.get(key)
    except TrackerPermanent as exc:
        if exc.kind == "not_found":
            raise NotFound(f"{name} has no issue {key}: {exc.reason}", key=key) from None
        raise ValidationFailed(f"{name} refused to show issue {key}: {exc.reason}", field="url") from None
    except TrackerRetryable as exc:
        raise StoreUnavailable(f"tracker {name} unavailable: {exc.reason}") from None
    except TrackerError as exc:  # pragma: no cover - the tree has no other branch
        raise StoreUnavailable(f"tracker {name}: {exc.reason}") from None


def project_of(config: TrackersConfig, name: str, issue: RemoteIssue, item: dict[str, Any]) -> str:
    """GitHub/GitLab keys and Jira keys name their project; a Redmine issue is taken to be in the
    project its route (or the tracker) names."""
    kind = config.trackers[name].kind
    if kind in ("github", "gitlab"):
        return issue.key.rsplit("#", 1)[0]
    if kind == "jira":
        return issue.key.rsplit("-", 1)[0]
    try:
        target = config.route_for(item)
    except TrackerPermanent:
        target = None
    if target is not None and target.tracker == name:
        return target.project
    return config.trackers[name].project or ""
