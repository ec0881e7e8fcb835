"""Pull: remote state changes come back to the backlog, found by an "updated since" cursor.

Per tracker and project one ``list_changed_since`` call (more only while the tracker says
``more``), so a sync with nothing changed costs one request per project however many items are
linked; webhooks only add single-issue pulls to the outbox (``kind="pull"``), taken here too.

For each changed issue that is linked: when its open/closed state differs from the one last
seen, the item moves (``pulled_status``) with one event by ``tracker:<name>`` whose message holds
the remote URL — unless the backlog also moved since the last push, in which case the later
change wins and the other is kept as a comment event (``plan.conflict``). The cursor is stored
only after its page was applied, so a crash replays the page: applying it again finds the item
already moved and writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.router.clock import iso_z, parse_utc
from services.router.domain.enums import CLOSED_STATUSES, EventType, Status
from services.router.files import checkpoint
from services.router.stores.tracker_links import TrackerLink
from services.router.trackers.errors import TrackerError, TrackerPermanent
from services.router.trackers.model import Cursor, RemoteIssue
from services.router.trackers.outbox import TrackerRun
from services.router.trackers.plan import conflict, pulled_status, remote_changed, remote_state, status_message

MAX_PAGES_PER_RUN = 20


def projects_to_pull(run: TrackerRun) -> list[str]:
    return sorted({link.project for link in run.tlinks.values() if link.state == "linked"})


def start_cursor(run: TrackerRun, project: str) -> Cursor:
    """The stored cursor, else the earliest remote time any link of the project has seen."""
    stored = run.links.cursor(run.name, project)
    if stored is not None:
        return Cursor.from_dict(stored)
    seen = [parse_utc(link.remote["updated_at"]) for link in run.tlinks.values()
            if link.project == project and link.remote.get("updated_at")]
    return Cursor.start(min(seen) if seen else run.clock.now())


def pull(run: TrackerRun, *, projects: list[str] | None = None, scheduled: bool = True) -> None:
    """The cursor pull of each project (``projects``: only these), then the scheduled pulls."""
    for project in projects_to_pull(run) if projects is None else projects:
        cursor = start_cursor(run, project)
        for _ in range(MAX_PAGES_PER_RUN):
            try:
                page = run.adapter.list_changed_since(project, cursor)
            except TrackerError as exc:
                run.pull_failed(project, exc)
                break
            links = run.by_key()
            for issue in page.issues:
                link = links.get(issue.key)
                if link is not None:
                    apply_remote(run, link, issue)
            cursor = page.cursor
            run.links.put_cursor(run.name, project, cursor.to_dict())
            checkpoint("tracker:cursor_stored")
            if not page.more:
                break
    if scheduled:
        pull_scheduled(run)


def pull_scheduled(run: TrackerRun) -> None:
    """The single-issue pulls webhooks asked for: read the issue, never the webhook's body."""
    for work in [w for w in run.work.values() if w.kind == "pull"]:
        link = run.by_key().get(work.subject)
        if link is not None:
            try:
                issue = run.adapter.get(work.subject)
            except TrackerPermanent as exc:
                if exc.kind == "not_found":
                    run.failed(kind="push", subject=link.item_id, item_id=link.item_id, error=exc)
                run.succeeded(work.subject)  # the issue's own state is parked or retried; the pull is done
                continue
            except TrackerError as exc:
                run.failed(kind="pull", subject=work.subject, item_id=None, error=exc)
                continue
            apply_remote(run, link, issue)
        run.succeeded(work.subject)


def apply_remote(run: TrackerRun, link: TrackerLink, issue: RemoteIssue) -> None:
    """Bring one remote issue's state back to its item and remember what was seen."""
    item = run.items.get(link.item_id)
    if item is None:
        return
    seen = remote_state(issue)
    if link.remote == seen:
        return
    pushed = dict(link.pushed)
    target = pulled_status(run.config, str(item["status"]), issue) if remote_changed(link, issue) else None
    if target is not None:
        found = conflict(link, item, issue, backlog_changed_at=last_status_change(run, link.item_id),
                         tracker=run.name, kind=run.config.kind)
        if found is None or found.remote_wins:
            result = run.store.set_status(link.item_id, Status(target), actor=run.actor,
                                          message=status_message(run.config.kind, issue))
            run.items[link.item_id] = result.item
            pushed["status"] = target  # the tracker shows it already: nothing to push back
            run.record("pulled", link.item_id, key=issue.key, status=target)
        if found is not None:
            run.store.add_comment(link.item_id, found.note, actor=run.actor)
            run.record("conflict", link.item_id, key=issue.key, winner="tracker" if found.remote_wins else "backlog")
    if pushed.get("status") is not None and (pushed["status"] in CLOSED_STATUSES) != issue.closed:
        # What the link says was pushed no longer matches what the tracker shows (a crash between
        # moving the item and storing the link, a lost conflict): unknown, so the next push resends it.
        pushed["status"] = None
    run.put_link(replace(link, remote=seen, pushed=pushed, synced_at=iso_z(run.clock.now())))
    checkpoint("tracker:pull_applied")


def last_status_change(run: TrackerRun, item_id: str) -> datetime:
    """When the backlog last moved the item's status (its latest status event, else its update)."""
    events = [e for e in run.store.events(item_id) if e["type"] == EventType.STATUS_CHANGED]
    stamp = events[-1]["ts"] if events else run.items[item_id]["updated_at"]
    return parse_utc(str(stamp))
