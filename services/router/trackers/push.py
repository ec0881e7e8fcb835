"""Push: each routed item's remote issue made to say what the item says — created exactly once.

**Exactly once.** Before a remote create, the link is stored as an *intent* (``state="creating"``,
with the time and the fields to send). If the process dies between the tracker's answer and
storing the key, the next run finds the intent without a key and first asks the tracker for an
issue holding the item's marker (``find_by_marker``, which also walks issues created since the
intent because some search indexes lag); it adopts what it finds and creates only when nothing
is there. Two runs never create at once: each holds the tracker's sync lock
(``TrackerLinkStore.sync_lock``: an advisory lock on Postgres, an ``flock`` on JSONL), and on
Postgres the lock's session is checked just before each create.

**Updates** send only the fields that differ from what the link says was last pushed (title,
description, priority, status through ``status_map``, owner through ``assignees``); **comments**
are the item's ``commented`` events after the link's mark, sent in order, the mark moved after
each (a crash between a comment's answer and its mark sends that one comment again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from services.router.clock import iso_z, parse_utc
from services.router.domain.changes import Record
from services.router.domain.enums import ACTIVE_STATUSES
from services.router.files import checkpoint
from services.router.stores.tracker_links import TrackerLink, WorkKind
from services.router.trackers.errors import TrackerError, TrackerPermanent
from services.router.trackers.model import IssueDraft, IssueUpdate, RemoteIssue
from services.router.trackers.outbox import TrackerRun
from services.router.trackers.plan import changed_fields, desired, remote_changed, remote_state, waiting
from services.router.trackers.pull import apply_remote

SEARCH_MARGIN = timedelta(minutes=5)  # remote clocks differ from ours: search a little earlier


@dataclass
class ItemPlan:
    """One item's remote work this run: a create (``project``; ``intent`` after a crash), or the
    fields to update and the comments to add to its linked issue."""

    item: Record
    project: str | None = None
    intent: TrackerLink | None = None
    fields: list[str] = field(default_factory=list)
    comments: list[Record] = field(default_factory=list)

    @property
    def item_id(self) -> str:
        return str(self.item["id"])

    @property
    def creates(self) -> bool:
        return self.project is not None


def plan_items(run: TrackerRun, elsewhere: set[str], comments: dict[str, list[Record]]) -> list[ItemPlan]:
    """What this tracker's items need, compared locally (no request): creates first."""
    creates: list[ItemPlan] = []
    changes: list[ItemPlan] = []
    for item_id, item in run.items.items():
        link = run.tlinks.get(item_id)
        if link is None:
            project = route(run, item) if item_id not in elsewhere and item["status"] in ACTIVE_STATUSES else None
            if project is not None:  # its comments so far are sent once the issue exists
                creates.append(ItemPlan(item, project=project, comments=comments.get(item_id, [])))
        elif link.state == "creating":
            creates.append(ItemPlan(item, project=link.project, intent=link, comments=comments.get(item_id, [])))
        elif link.state == "linked":
            wanted = desired(item, run.public_url)
            news = [c for c in comments.get(item_id, []) if c["actor"] != run.actor]
            fields = changed_fields(wanted, link.pushed)
            if fields or news:
                changes.append(ItemPlan(item, fields=fields, comments=comments.get(item_id, [])))
    return creates + changes


def route(run: TrackerRun, item: Record) -> str | None:
    """This tracker's project for an unlinked item, or None; a route that expands to an invalid
    project parks the item (``TrackerPermanent`` kind ``config``)."""
    try:
        target = run.trackers.route_for(item)
    except TrackerPermanent as exc:
        if exc.tracker == run.name and not blocked(run, item):
            run.failed(kind="create", subject=str(item["id"]), item_id=str(item["id"]), error=exc)
        return None
    return target.project if target is not None and target.tracker == run.name else None


def blocked(run: TrackerRun, item: Record) -> str | None:
    return waiting(run.work.get(str(item["id"])), now=run.clock.now(), rev=item.get("rev"), digest=run.digest)


def push(run: TrackerRun, plans: Iterable[ItemPlan]) -> None:
    for plan in plans:
        why = blocked(run, plan.item)
        if why is not None:
            run.counts[f"skipped_{why}"] += 1
            if why == "parked":
                run.pending.discard(plan.item_id)
            continue
        kind: WorkKind = "create" if plan.creates else "push"
        try:
            if plan.creates:
                create(run, plan)
            else:
                update(run, plan)
        except (TrackerError, ValueError) as exc:
            error = exc if isinstance(exc, TrackerError) else TrackerPermanent(run.name, str(exc), kind="config")
            run.failed(kind=kind, subject=plan.item_id, item_id=plan.item_id, error=error)
            continue
        run.succeeded(plan.item_id)


def create(run: TrackerRun, plan: ItemPlan) -> None:
    item, project = plan.item, plan.project
    assert project is not None
    wanted = desired(item, run.public_url)
    if plan.intent is not None and plan.intent.intent_at is not None:
        since = parse_utc(plan.intent.intent_at) - SEARCH_MARGIN
        found = run.adapter.find_by_marker(project, plan.item_id, created_since=since)
        if found is not None:
            # What the interrupted run sent; the status is sent again (some adapters set it in a
            # second request after the create, which may not have happened).
            sent = {k: v for k, v in plan.intent.pushed.items() if k != "status"}
            link = linked(run, plan.intent, found, sent)
            run.put_link(link)
            run.record("adopted", plan.item_id, key=found.key, url=found.url)
            if changed_fields(wanted, sent) or plan.comments:
                update(run, ItemPlan(item, fields=changed_fields(wanted, sent), comments=plan.comments))
            return
    mark = plan.intent.comments_through if plan.intent is not None else None
    intent = TrackerLink(plan.item_id, run.name, project, "creating", pushed=wanted, comments_through=mark,
                         intent_at=iso_z(run.clock.now()))
    run.put_link(intent)
    checkpoint("tracker:intent_stored")
    run.lock.check()
    try:
        issue = run.adapter.create(project, IssueDraft(
            item_id=plan.item_id, title=wanted["title"], description=wanted["description"], status=wanted["status"],
            priority=wanted["priority"], owner=wanted["owner"]))
    except TrackerPermanent:
        run.drop_link(plan.item_id)  # refused: no issue was made, so no intent is left to search for
        raise
    checkpoint("tracker:after_remote_create")
    run.put_link(linked(run, intent, issue, wanted))
    checkpoint("tracker:link_stored")
    run.record("created", plan.item_id, key=issue.key, url=issue.url, project=project)
    if plan.comments:  # the item's comments so far follow it to its new issue
        update(run, ItemPlan(item, comments=plan.comments))


def linked(run: TrackerRun, intent: TrackerLink, issue: RemoteIssue, pushed: dict[str, object]) -> TrackerLink:
    now = iso_z(run.clock.now())
    return replace(intent, state="linked", remote_key=issue.key, url=issue.url, remote=remote_state(issue),
                   pushed=dict(pushed), linked_at=now, synced_at=now)


def update(run: TrackerRun, plan: ItemPlan) -> None:
    link = run.tlinks[plan.item_id]
    assert link.remote_key is not None
    wanted = desired(plan.item, run.public_url)
    if plan.fields:
        change = IssueUpdate(item_id=plan.item_id, **{name: wanted[name] for name in plan.fields})
        issue = run.adapter.update(link.remote_key, change)
        checkpoint("tracker:after_remote_update")
        pushed = {**link.pushed, **{name: wanted[name] for name in plan.fields}}
        if "status" in plan.fields or not remote_changed(link, issue):
            link = replace(link, pushed=pushed, remote=remote_state(issue), synced_at=iso_z(run.clock.now()))
            run.put_link(link)
        else:  # the answer shows a remote close/reopen the pull had not seen yet: bring it back too
            link = replace(link, pushed=pushed)
            run.put_link(link)
            apply_remote(run, link, issue)
            link = run.tlinks[plan.item_id]
        run.record("updated", plan.item_id, key=link.remote_key, fields=plan.fields)
    for event in plan.comments:
        if event["actor"] != run.actor:
            run.adapter.add_comment(link.remote_key or "", comment_body(event))
            checkpoint("tracker:after_remote_comment")
            run.record("commented", plan.item_id, key=link.remote_key, event=event["id"])
        link = replace(link, comments_through=str(event["id"]))
        run.put_link(link)


def comment_body(event: Record) -> str:
    return f"{event['actor']} commented in the backlog:\n\n{event['message']}"
