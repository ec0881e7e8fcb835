"""Tracker links: where each backlog item lives on a tracker, and the sync's durable state.

One interface, one module per backend (memory, JSONL, Postgres; the Auto store uses Postgres
while it is on Postgres), one contract suite (``tests/stores/test_tracker_links.py``). Four
kinds of record:

- **link** (one per item): tracker, project, remote key and URL; the remote state last seen
  (status, closed, version, updated_at); what was last pushed (title, description, priority,
  status, owner, in backlog words); the last backlog event considered for comments. ``state``:
  ``creating`` is a create *intent*, stored before the remote create is sent, so that after a
  crash between the create and storing the key the sync first searches the tracker for the
  item's marker and adopts what it finds; ``linked``; ``unlinked`` (``backlog tracker unlink``:
  the item is not synced again until someone links it).
- **work** (per tracker and subject): the outbox's memory of what failed or waits — a create or
  push that failed (attempts, next attempt, last error) or was refused for good (parked, with
  the reason and the item revision it was parked at), and pulls a webhook scheduled.
- **cursor** (per tracker and project): the pull's "updated since" cursor.
- **tracker state** (per tracker): last run, last success, last error, a rate-limit wait,
  request counts by outcome.

Nothing here touches an item: storing a link never changes the item's ``updated_at`` nor writes
an event, so a push never triggers another push. A link goes with its item: Postgres deletes it
by ``ON DELETE CASCADE``, the others stop returning links of items that are gone.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol

from services.router.domain.changes import Record

LinkState = Literal["creating", "linked", "unlinked"]
WorkKind = Literal["create", "push", "pull"]
SEP = "\x1f"  # joins the parts of a composite key (never in a tracker name, project or key)


@dataclass(frozen=True, slots=True)
class TrackerLink:
    item_id: str
    tracker: str
    project: str
    state: LinkState
    remote_key: str | None = None
    url: str | None = None
    remote: dict[str, Any] = field(default_factory=dict)
    """Last seen: ``status`` (the tracker's word), ``closed``, ``version``, ``updated_at`` (ISO)."""
    pushed: dict[str, Any] = field(default_factory=dict)
    """What the tracker was last told, in backlog words: title, description, priority, status, owner."""
    comments_through: str | None = None
    """The id of the last backlog event already considered for comments."""
    intent_at: str | None = None
    linked_at: str | None = None
    synced_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Like ``asdict`` (a copy, nested dicts too) without its recursive deep copy: ``remote``
        and ``pushed`` hold JSON scalars only, and a batch of creates serializes 2 links per issue."""
        return {"item_id": self.item_id, "tracker": self.tracker, "project": self.project, "state": self.state,
                "remote_key": self.remote_key, "url": self.url, "remote": dict(self.remote),
                "pushed": dict(self.pushed), "comments_through": self.comments_through, "intent_at": self.intent_at,
                "linked_at": self.linked_at, "synced_at": self.synced_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackerLink:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True, slots=True)
class SyncWork:
    """One outbox entry. ``subject`` is the item id (create, push) or the remote key (pull)."""

    tracker: str
    subject: str
    kind: WorkKind
    item_id: str | None = None
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    parked_reason: str | None = None
    parked_at: str | None = None
    parked_rev: int | None = None
    parked_config: str | None = None
    created_at: str | None = None

    @property
    def parked(self) -> bool:
        return self.parked_reason is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyncWork:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class SyncLock(Protocol):
    def check(self) -> None:
        """Raise ``StoreUnavailable`` when the lock may have been lost (Postgres: its session died)."""


class TrackerLinkStore(Protocol):
    backend: str

    def get_link(self, item_id: str) -> TrackerLink | None: ...
    def links(self, tracker: str | None = None) -> builtins.list[TrackerLink]: ...
    def link_by_key(self, tracker: str, remote_key: str) -> TrackerLink | None: ...
    def put_link(self, link: TrackerLink) -> None:
        """Store (replace) an item's link. ``NotFound`` for an item that does not exist;
        ``Conflict`` when the remote issue is already linked to another item."""
        ...

    def put_links(self, links: Sequence[TrackerLink], *, delete: Sequence[str] = ()) -> None:
        """Store several links and delete others in one durable write (one fsync on JSONL, one
        transaction on Postgres): all of them or, on an error, none. Why: the sync records a
        batch of create intents, and then the batch's results, at the cost of one write each
        (group commit) instead of two per issue. Errors as ``put_link``."""
        ...

    def delete_link(self, item_id: str) -> None: ...
    def work(self, tracker: str | None = None) -> builtins.list[SyncWork]: ...
    def put_work(self, work: SyncWork) -> None: ...
    def delete_work(self, tracker: str, subject: str) -> None: ...
    def cursor(self, tracker: str, project: str) -> dict[str, Any] | None: ...
    def put_cursor(self, tracker: str, project: str, cursor: dict[str, Any]) -> None: ...
    def tracker_state(self, tracker: str) -> dict[str, Any]: ...
    def put_tracker_state(self, tracker: str, state: dict[str, Any]) -> None: ...
    def new_comments(self, marks: Mapping[str, str | None]) -> dict[str, builtins.list[Record]]:
        """Per item id: its ``commented`` events after the mark (an event id; None: all), oldest first."""
        ...

    def sync_lock(self, tracker: str, *, wait_seconds: float = 0.0) -> AbstractContextManager[SyncLock | None]:
        """Exclusive per tracker across processes and hosts; None inside when another holds it."""
        ...

    def close(self) -> None: ...


class NoLoss:
    """A lock that cannot be lost while its process lives (flock, a mutex)."""

    def check(self) -> None:
        return None


def work_key(tracker: str, subject: str) -> str:
    return f"{tracker}{SEP}{subject}"


def after(event_id: str, mark: str | None) -> bool:
    """Event ids are creation-ordered (``new_id``): later events compare greater."""
    return mark is None or event_id > mark


def comments_after(events: Iterator[Record] | builtins.list[Record], mark: str | None) -> builtins.list[Record]:
    return [e for e in events if e.get("type") == "commented" and after(str(e["id"]), mark)]
