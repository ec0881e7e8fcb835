"""Push: each routed item's remote issue made to say what the item says — created exactly once.

**Exactly once.** Before a remote create, the link is stored as an *intent* (``state="creating"``,
with the time and the fields to send). If the process dies between the tracker's answer and
storing the key, the next run finds the intent without a key and first asks the tracker for an
issue holding the item's marker (``find_by_marker``, which also walks issues created since the
intent because some search indexes lag); it adopts what it finds and creates only when nothing
is there. Two runs never create at once: each holds the tracker's sync lock
(``TrackerLinkStore.sync_lock``: an advisory lock on Postgres, an ``flock`` on JSONL), and on
Postgres the lock's session is checked just before each create.

**Group commit.** Fresh creates go in batches of ``CREATE_BATCH``: the batch's intents are
stored in one durable write before its first POST, and the links of the issues it made in one
write after its last (also when the run stops part-way), so the durable cost is two writes per
batch instead of two per issue. A link becomes durable at the end of its batch; a crash before
that leaves its intent, which the next run recovers as above (search, adopt, no second issue).

**Updates** send only the fields that differ from what the link says was last pushed (title,
description, priority, status through ``status_map``, owner through ``assignees``); **comments**
are the item's ``commented`` events after the link's mark, sent in order, the mark moved after
each (a crash between a comment's answer and its mark sends that one comment again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from services.router.clock import iso_z, parse_utc
from services.router.domain.changes import Record
from services.router.domain.enums import ACTIVE_STATUSES
from services.router.files import checkpoint
from services.router.stores.tracker_links import TrackerLink
from services.router.trackers.errors import TrackerError, TrackerPermanent
from services.router.trackers.model import IssueDraft, IssueUpdate, RemoteIssue
from services.router.trackers.outbox import TrackerRun
from services.router.trackers.plan import changed_fields, desired, remote_changed, remote_state, waiting
from services.router.trackers.pull import apply_remote

SEARCH_MARGIN = timedelta(minutes=5)  # remote clocks differ from ours: search a little earlier
CREATE_BATCH = 50  # creates per group commit: one durable write of their intents, one of their links


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
    """Recovered intents first (search, adopt or create), then fresh creates in group-committed
    batches (:func:`create_batch`), then the updates and comments of linked items."""
    ready: list[ItemPlan] = []
    for plan in plans:
        why = blocked(run, plan.item)
        if why is None:
            ready.append(plan)
            continue
        run.counts[f"skipped_{why}"] += 1
        if why == "parked":
            run.pending.discard(plan.item_id)
    fresh: list[ItemPlan] = []
    for plan in ready:
        if plan.creates and plan.intent is not None and plan.intent.intent_at is not None:
            if attempt(run, plan, adopt) is False:  # nothing there: create it after all
                fresh.append(plan)
        elif plan.creates:
            fresh.append(plan)
    for start in range(0, len(fresh), CREATE_BATCH):
        create_batch(run, fresh[start:start + CREATE_BATCH])
    for plan in ready:
        if not plan.creates:
            attempt(run, plan, update)


def attempt(run: TrackerRun, plan: ItemPlan, action: Callable[[TrackerRun, ItemPlan], bool | None]) -> bool | None:
    """``action``'s answer (``False``: not done, try otherwise), or None when it failed (recorded)."""
    try:
        done = action(run, plan)
    except (TrackerError, ValueError) as exc:
        fail(run, plan, exc)
        return None
    if done is not False:
        run.succeeded(plan.item_id)
    return done


def fail(run: TrackerRun, plan: ItemPlan, exc: TrackerError | ValueError) -> None:
    error = exc if isinstance(exc, TrackerError) else TrackerPermanent(run.name, str(exc), kind="config")
    run.failed(kind="create" if plan.creates else "push", subject=plan.item_id, item_id=plan.item_id, error=error)


def adopt(run: TrackerRun, plan: ItemPlan) -> bool:
    """After a crash: the issue an interrupted run created, linked (True), or False when there is none."""
    intent, project = plan.intent, plan.project
    assert intent is not None and intent.intent_at is not None and project is not None
    since = parse_utc(intent.intent_at) - SEARCH_MARGIN
    found = run.adapter.find_by_marker(project, plan.item_id, created_since=since)
    if found is None:
        return False
    # What the interrupted run sent; the status is sent again (some adapters set it in a second
    # request after the create, which may not have happened).
    sent = {k: v for k, v in intent.pushed.items() if k != "status"}
    run.put_link(linked(run, intent, found, sent))
    run.record("adopted", plan.item_id, key=found.key, url=found.url)
    wanted = desired(plan.item, run.public_url)
    if changed_fields(wanted, sent) or plan.comments:
        update(run, ItemPlan(plan.item, fields=changed_fields(wanted, sent), comments=plan.comments))
    return True


def create_batch(run: TrackerRun, plans: list[ItemPlan]) -> None:
    """Create each plan's issue exactly once, with two durable writes for the whole batch.

    1. every plan's intent, in one write (so each intent is durable before its POST);
    2. the POSTs, one at a time (the lock checked before each);
    3. the links of the issues made and the removal of refused plans' intents, in one write —
       also when the run stops part-way (rate limit, tracker down, lost lock), where the intents
       of plans never sent are removed too. A crash before this write leaves intents only: the
       next run searches for each and adopts what it finds, as after any crash.

    Then each new issue gets the item's comments so far (a failure there counts as the create's).
    """
    now = iso_z(run.clock.now())
    intents = [TrackerLink(plan.item_id, run.name, plan.project or "", "creating",
                           pushed=desired(plan.item, run.public_url),
                           comments_through=plan.intent.comments_through if plan.intent is not None else None,
                           intent_at=now) for plan in plans]
    run.put_links(intents)
    checkpoint("tracker:intent_stored")
    made: list[tuple[ItemPlan, TrackerLink]] = []
    refused: list[str] = []
    sent = 0
    try:
        for plan, intent in zip(plans, intents, strict=True):
            sent += 1
            try:
                run.lock.check()
                issue = run.adapter.create(intent.project, draft_of(intent))
            except (TrackerError, ValueError) as exc:
                if isinstance(exc, TrackerPermanent):  # refused: no issue was made, no intent to keep
                    refused.append(plan.item_id)
                fail(run, plan, exc)
                continue
            checkpoint("tracker:after_remote_create")
            made.append((plan, linked(run, intent, issue, intent.pushed)))
            if plan.comments:
                run.failures_in_a_row = 0  # an answer: the tracker is up (done once its comments are)
            else:
                run.succeeded(plan.item_id)
    except Exception:
        unsent = [p.item_id for p in plans[sent:] if p.intent is None]  # never sent: nothing to search for
        settle(run, made, refused + unsent)
        raise
    settle(run, made, refused)
    for plan, _ in made:
        if plan.comments:  # the item's comments so far follow it to its new issue
            attempt(run, plan, comment_on_new)


def settle(run: TrackerRun, made: list[tuple[ItemPlan, TrackerLink]], refused: list[str]) -> None:
    if not made and not refused:
        return
    run.put_links([link for _, link in made], delete=refused)
    checkpoint("tracker:link_stored")
    for plan, link in made:
        run.record("created", plan.item_id, key=link.remote_key, url=link.url, project=plan.project)


def comment_on_new(run: TrackerRun, plan: ItemPlan) -> None:
    update(run, ItemPlan(plan.item, comments=plan.comments))


def draft_of(intent: TrackerLink) -> IssueDraft:
    wanted = intent.pushed
    return IssueDraft(item_id=intent.item_id, title=wanted["title"], description=wanted["description"],
                      status=wanted["status"], priority=wanted["priority"], owner=wanted["owner"])


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
