"""One tracker's run, and the outbox: what happens to remote work that fails.

Like Alertmanager's notifiers, adapters only say *how* a request failed (``trackers.errors``);
this module alone decides what that means:

- **rate limited** (429, GitHub's 403 limits, a 503 with ``Retry-After``) — the tracker asked us
  to wait: the run stops for this tracker and no run calls it again before ``not_before``
  (``Retry-After`` seconds or date, else the reset header, else 60 s);
- **retryable** (5xx, timeouts, connection errors) — the item's work gets attempt + 1 and an
  exponential backoff (1 min doubling, at most 6 h); three failures in a row stop the run for
  this tracker (it looks down; the next run tries again, costing one request while it stays down);
- **refused** for good (``TrackerPermanent``: a 404 project, a 422 field, a deleted issue, a name
  the tracker lacks) — the item is *parked* with the reason and shown; it is tried again only
  when the item or the tracker's configuration changes (or after ``tracker link``/``unlink``).
  An ``auth`` refusal (401, a token variable unset) stops the run instead: it is the tracker's
  problem, not the item's.

What is pending is never stored as a queue: it is the difference between each item and its link
(both durable), so nothing is lost while a tracker is down; this outbox keeps only the attempts,
backoffs, parked reasons and the pulls webhooks asked for.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.router.clock import Clock, iso_z
from services.router.domain.changes import Record
from services.router.domain.models import TRACKER_ACTOR_PREFIX
from services.router.errors import Conflict, NotFound
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_links import SyncLock, SyncWork, TrackerLink, TrackerLinkStore, WorkKind
from services.router.trackers.config import TrackerConfig, TrackersConfig
from services.router.trackers.errors import TrackerError, TrackerPermanent, TrackerRateLimited
from services.router.trackers.model import TrackerAdapter
from services.router.trackers.plan import next_attempt

log = logging.getLogger("backlog.trackers")

MAX_FAILURES_IN_A_ROW = 3
MAX_ITEMS_REPORTED = 200


class StopTracker(Exception):
    """The rest of this tracker's run is skipped; ``wait_until``: no run before then (rate limit)."""

    def __init__(self, reason: str, *, wait_until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_until = wait_until


@dataclass
class TrackerRun:
    """Everything one tracker's run reads and what it did, in memory for the run."""

    name: str
    config: TrackerConfig
    trackers: TrackersConfig
    adapter: TrackerAdapter
    links: TrackerLinkStore
    store: BacklogStore
    clock: Clock
    lock: SyncLock
    items: dict[str, Record]
    tlinks: dict[str, TrackerLink]
    work: dict[str, SyncWork]
    digest: str
    public_url: str | None
    counts: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    actions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    wait_until: datetime | None = None
    failures_in_a_row: int = 0
    pending: set[str] = field(default_factory=set)
    dry_run: bool = False
    stopped: bool = False

    @property
    def actor(self) -> str:
        return f"{TRACKER_ACTOR_PREFIX}{self.name}"

    def by_key(self) -> dict[str, TrackerLink]:
        return {link.remote_key: link for link in self.tlinks.values() if link.remote_key and link.state == "linked"}

    def record(self, action: str, item_id: str | None, **detail: Any) -> None:
        self.counts[action] += 1
        if len(self.actions) < MAX_ITEMS_REPORTED:
            self.actions.append({"action": action, "id": item_id, **detail})

    def put_link(self, link: TrackerLink) -> None:
        self.links.put_link(link)
        self.tlinks[link.item_id] = link

    def put_links(self, links: Sequence[TrackerLink], *, delete: Sequence[str] = ()) -> None:
        """One durable write for all of them (a batch of creates). When the store refuses one (its
        item was deleted meanwhile), the others are stored one by one and the refusal is raised."""
        try:
            self.links.put_links(links, delete=delete)
        except (NotFound, Conflict):
            refused: NotFound | Conflict | None = None
            for item_id in delete:
                self.drop_link(item_id)
            for link in links:
                try:
                    self.put_link(link)
                except (NotFound, Conflict) as exc:
                    refused = refused or exc
            if refused is not None:
                raise refused from None
            return
        for item_id in delete:
            self.tlinks.pop(item_id, None)
        self.tlinks.update((link.item_id, link) for link in links)

    def drop_link(self, item_id: str) -> None:
        self.links.delete_link(item_id)
        self.tlinks.pop(item_id, None)

    # -- the outbox ------------------------------------------------------------------------------
    def succeeded(self, subject: str) -> None:
        self.failures_in_a_row = 0
        self.pending.discard(subject)
        if subject in self.work:
            self.links.delete_work(self.name, subject)
            del self.work[subject]

    def failed(self, *, kind: WorkKind, subject: str, item_id: str | None, error: TrackerError) -> None:
        """Record a failed remote call (see the module docstring); may raise ``StopTracker``."""
        if self.dry_run:  # only a route's bad project gets here in a dry run: say so, store nothing
            self.record("would_park", item_id, kind=kind, reason=error.reason)
            return
        now = self.clock.now()
        self.error = error.reason
        if isinstance(error, TrackerRateLimited):
            raise StopTracker(f"rate limited: {error.reason}",
                              wait_until=now + timedelta(seconds=error.retry_after_seconds))
        if isinstance(error, TrackerPermanent) and error.kind == "auth":
            raise StopTracker(error.reason)
        previous = self.work.get(subject)
        attempts = (previous.attempts if previous is not None else 0) + 1
        created = previous.created_at if previous is not None and previous.created_at else iso_z(now)
        if isinstance(error, TrackerPermanent):
            self.failures_in_a_row = 0  # a refusal is an answer: the tracker is up
            rev = (self.items.get(item_id) or {}).get("rev") if item_id else None
            work = SyncWork(self.name, subject, kind, item_id, attempts, None, error.reason,
                            parked_reason=error.reason, parked_at=iso_z(now), parked_rev=rev,
                            parked_config=self.digest, created_at=created)
            log.warning("tracker %s: parked %s %s: %s", self.name, kind, subject, error.reason)
            self._put_work(work)
            self.pending.discard(subject)
            self.record("parked", item_id, kind=kind, reason=error.reason)
            return
        work = SyncWork(self.name, subject, kind, item_id, attempts, iso_z(next_attempt(now, attempts)),
                        error.reason, created_at=created)
        self._put_work(work)
        self.record("retrying", item_id, kind=kind, attempts=attempts, next_attempt_at=work.next_attempt_at,
                    error=error.reason)
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            raise StopTracker(f"{self.failures_in_a_row} requests in a row failed, the tracker looks down "
                              f"(last: {error.reason})")

    def _put_work(self, work: SyncWork) -> None:
        self.links.put_work(work)
        self.work[work.subject] = work

    def pull_failed(self, project: str, error: TrackerError) -> None:
        """A pull of a whole project: anything but a refusal of that project stops the run."""
        self.error = f"pull of {project}: {error.reason}"
        if isinstance(error, TrackerPermanent) and error.kind != "auth":
            log.warning("tracker %s: %s", self.name, self.error)
            self.record("pull_refused", None, project=project, reason=error.reason)
            return
        if isinstance(error, TrackerRateLimited):
            raise StopTracker(f"rate limited: {error.reason}",
                              wait_until=self.clock.now() + timedelta(seconds=error.retry_after_seconds))
        raise StopTracker(self.error)

    def stop(self, stop: StopTracker) -> None:
        self.stopped = True
        self.error = stop.reason
        self.wait_until = stop.wait_until
        log.warning("tracker %s: stopped this run: %s", self.name, stop.reason)

    def parked_count(self) -> int:
        return sum(1 for w in self.work.values() if w.parked)
