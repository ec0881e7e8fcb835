"""The sync engine: one run per configured tracker — pull, then push — and the dry-run plan.

A run of one tracker holds its sync lock for the whole run (another run of that tracker is
skipped with the reason, or waits ``wait_seconds``), reads the items once, its links and
outbox, then:

1. **pull** the remote changes since the cursor (``pull.py``), so the backlog knows about
   remote closes before it decides what to push;
2. **push** what differs between each item and its link: creates (exactly once), updates of
   the changed fields, new comments (``push.py``);
3. record the tracker's state: last run, last success or error, pending and parked counts,
   request counts by outcome, and a rate limit's ``not_before``.

Backlog writes never wait for this: the engine runs from the ``tracker_sync`` job, ``backlog
tracker sync`` or a webhook's pull, and only reads what the write path already stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.router.clock import Clock, iso_z, parse_utc
from services.router.domain.changes import Record
from services.router.domain.enums import ACTIVE_STATUSES
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.errors import ValidationFailed
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_links import NoLoss, SyncLock, TrackerLink, TrackerLinkStore
from services.router.trackers import build_adapter
from services.router.trackers.config import TrackerConfig, TrackersConfig
from services.router.trackers.model import TrackerAdapter
from services.router.trackers.offline import OFFLINE
from services.router.trackers.outbox import StopTracker, TrackerRun
from services.router.trackers.plan import config_digest
from services.router.trackers.pull import projects_to_pull, pull, pull_scheduled, start_cursor
from services.router.trackers.push import ItemPlan, blocked, plan_items, push

AdapterFactory = Callable[[str, TrackerConfig, Callable[[str], None]], TrackerAdapter]
TOTALS = ("created", "adopted", "updated", "commented", "pulled", "conflicts", "retrying", "newly_parked",
          "pending", "parked", "requests")
DRY_TOTALS = ("would_create", "would_update", "would_comment", "would_pull")
PUSHED = ("created", "adopted", "updated", "commented")


def default_adapter(name: str, config: TrackerConfig, observe: Callable[[str], None]) -> TrackerAdapter:
    return build_adapter(name, config, observe=observe)


def load_items(store: BacklogStore) -> dict[str, Record]:
    items: dict[str, Record] = {}
    cursor: str | None = None
    while True:
        page = store.list(ItemQuery(limit=MAX_PAGE, cursor=cursor))
        items.update((r["id"], r) for r in page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


@dataclass
class SyncEngine:
    store: BacklogStore
    links: TrackerLinkStore
    config: TrackersConfig
    clock: Clock
    public_url: str | None = None
    adapter_for: AdapterFactory = default_adapter

    def names(self, tracker: str | None) -> list[str]:
        if tracker is None:
            return sorted(self.config.trackers)
        if tracker not in self.config.trackers:
            declared = ", ".join(sorted(self.config.trackers)) or "none"
            raise ValidationFailed(f"tracker: no tracker named {tracker!r} in the trackers file; declared: "
                                   f"{declared}", field="tracker")
        return [tracker]

    def sync(self, *, tracker: str | None = None, dry_run: bool = False, wait_seconds: float = 0.0) -> dict[str, Any]:
        names = self.names(tracker)
        items = load_items(self.store)
        all_links = self.links.links()
        results = [self._one(name, items, all_links, dry_run=dry_run, wait_seconds=wait_seconds) for name in names]
        totals = Counter[str]()
        for result in results:
            totals.update({k: len(v) if isinstance(v, list) else v for k, v in result.items()
                           if k in (DRY_TOTALS if dry_run else TOTALS) and v})
        keys = DRY_TOTALS if dry_run else TOTALS
        return {"dry_run": dry_run, "skipped": False, **{k: totals.get(k, 0) for k in keys}, "trackers": results}

    def pull_scheduled(self, tracker: str, *, wait_seconds: float = 10.0) -> dict[str, Any]:
        """The pulls webhooks scheduled for one tracker, now (the next full run would do them too)."""
        work = {w.subject: w for w in self.links.work(tracker) if w.kind == "pull"}
        if not work:
            return {"tracker": tracker, "pulled": 0}
        with self.links.sync_lock(tracker, wait_seconds=wait_seconds) as lock:
            if lock is None:
                return {"tracker": tracker, "skipped": True, "reason": "a sync of it is running; it takes them"}
            tlinks = {link.item_id: link for link in self.links.links(tracker)}
            items = {k: v for k, v in ((link.item_id, self.store.get(link.item_id)) for link in tlinks.values()
                                       if link.remote_key in work) if v is not None}
            run = self._run(tracker, lock, items, tlinks, {w.subject: w for w in self.links.work(tracker)})
            try:
                pull_scheduled(run)
            except StopTracker as stop:
                run.stop(stop)
            finally:
                run.adapter.close()
                self._save(run, full=False)
            return {"tracker": tracker, "pulled": run.counts.get("pulled", 0), "error": run.error}

    # -- one tracker -------------------------------------------------------------------------------
    def _one(self, name: str, items: dict[str, Record], all_links: list[TrackerLink], *, dry_run: bool,
             wait_seconds: float) -> dict[str, Any]:
        kind = self.config.trackers[name].kind
        base: dict[str, Any] = {"tracker": name, "kind": kind, "skipped": False, "reason": None}
        not_before = self.links.tracker_state(name).get("not_before")
        if not dry_run and not_before and parse_utc(not_before) > self.clock.now():
            last = self.links.tracker_state(name).get("last_error")
            return {**base, "skipped": True, "reason": f"{name} asked us to wait until {not_before} ({last})"}
        with self.links.sync_lock(name, wait_seconds=wait_seconds) as lock:
            if lock is None:
                return {**base, "skipped": True,
                        "reason": f"another sync of {name} is running (it holds the sync lock); left to it"}
            tlinks = {link.item_id: link for link in self.links.links(name)}
            work = {w.subject: w for w in self.links.work(name)}
            elsewhere = {link.item_id for link in all_links if link.tracker != name}
            marks: dict[str, str | None] = {k: v.comments_through for k, v in tlinks.items()
                                            if v.state in ("linked", "creating")}
            marks.update({k: None for k, v in items.items()
                          if k not in tlinks and k not in elsewhere and v["status"] in ACTIVE_STATUSES})
            comments = self.links.new_comments(marks)
            if dry_run:
                run = self._run(name, lock, items, tlinks, work, adapter=OFFLINE, dry_run=True)
                return {**base, "dry_run": True, **dry_plan(run, plan_items(run, elsewhere, comments))}
            run = self._run(name, lock, items, tlinks, work)
            try:
                run.pending = {p.item_id for p in plan_items(run, elsewhere, comments)}
                pull(run)
                plans = plan_items(run, elsewhere, comments)
                run.pending = {p.item_id for p in plans}
                push(run, plans)
                if any(run.counts[k] for k in PUSHED):
                    # Read our own changes back now, so the cursor is past them and the next quiet run
                    # costs one request per project (and a remote change made meanwhile is seen sooner).
                    pull(run, projects=projects_to_pull(run), scheduled=False)
            except StopTracker as stop:
                run.stop(stop)
            finally:
                run.adapter.close()
                self._save(run, full=True)
            return {**base, **result_of(run)}

    def _run(self, name: str, lock: SyncLock, items: dict[str, Record], tlinks: dict[str, TrackerLink],
             work: dict[str, Any], *, adapter: TrackerAdapter | None = None, dry_run: bool = False) -> TrackerRun:
        config = self.config.trackers[name]
        requests: Counter[str] = Counter()

        def observe(outcome: str) -> None:
            requests[outcome] += 1

        return TrackerRun(
            name=name, config=config, trackers=self.config,
            adapter=adapter if adapter is not None else self.adapter_for(name, config, observe),
            links=self.links, store=self.store, clock=self.clock, lock=lock or NoLoss(), items=items,
            tlinks=tlinks, work=work, digest=config_digest(self.config, name), public_url=self.public_url,
            requests=requests, dry_run=dry_run,
        )

    def _save(self, run: TrackerRun, *, full: bool) -> None:
        """The tracker's state after a run (a partial run, webhook pulls, keeps its success time)."""
        state = dict(self.links.tracker_state(run.name))
        now = iso_z(self.clock.now())
        requests = Counter[str](state.get("requests") or {})
        requests.update(run.requests)
        state["requests"] = dict(requests)
        state["parked"] = sum(1 for w in self.links.work(run.name) if w.parked)
        if full:
            state.update(last_run_at=now, pending=len(run.pending) + scheduled(run), last_run=dict(run.counts),
                         linked=sum(1 for link in run.tlinks.values() if link.state == "linked"))
        if run.error is not None:
            state.update(last_error=run.error, last_error_at=now)
        if run.wait_until is not None:
            state["not_before"] = iso_z(run.wait_until)
        elif full:
            state.pop("not_before", None)
        if full and not run.stopped:
            state["last_success_at"] = now
        self.links.put_tracker_state(run.name, state)


def scheduled(run: TrackerRun) -> int:
    return sum(1 for w in run.work.values() if w.kind == "pull")


def result_of(run: TrackerRun) -> dict[str, Any]:
    counts = run.counts
    return {
        "created": counts["created"], "adopted": counts["adopted"], "updated": counts["updated"],
        "commented": counts["commented"], "pulled": counts["pulled"], "conflicts": counts["conflict"],
        "retrying": counts["retrying"], "newly_parked": counts["parked"], "pending": len(run.pending) + scheduled(run),
        "parked": run.parked_count(), "requests": sum(run.requests.values()), "requests_by_outcome": dict(run.requests),
        "error": run.error, "stopped": run.stopped, "items": run.actions,
    }


def dry_plan(run: TrackerRun, plans: list[ItemPlan]) -> dict[str, Any]:
    """What a real run would send, computed without a single request."""
    create, update, comment = [], [], []
    waiting = Counter[str]()
    for plan in plans:
        why = blocked(run, plan.item)
        if why is not None:
            waiting[why] += 1
            continue
        item = plan.item
        if plan.creates:
            create.append({"id": plan.item_id, "project": plan.project, "title": item["title"],
                           "priority": item["priority"], "status": item["status"],
                           "search_first": plan.intent is not None})
            continue
        key = run.tlinks[plan.item_id].remote_key
        if plan.fields:
            update.append({"id": plan.item_id, "key": key, "fields": plan.fields})
        news = [c for c in plan.comments if c["actor"] != run.actor]
        if news:
            comment.append({"id": plan.item_id, "key": key, "comments": len(news)})
    pulls = [{"project": project, "since": iso_z(start_cursor(run, project).query_since)}
             for project in projects_to_pull(run)]
    return {"would_create": create, "would_update": update, "would_comment": comment, "would_pull": pulls,
            "scheduled_pulls": sorted(w.subject for w in run.work.values() if w.kind == "pull"),
            "waiting": dict(waiting), "parked": run.parked_count(), "requests": 0}
