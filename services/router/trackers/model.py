"""The one small interface every tracker adapter implements, and the values it speaks in.

Like Alertmanager's ``Notifier``: an adapter translates backlog words (status, priority,
owner) into the tracker's words through its :class:`~services.router.trackers.config.TrackerConfig`
and one request at a time into the tracker's REST API, and reports a failure as one of the
:mod:`~services.router.trackers.errors` classes. It never retries, sleeps or stores anything:
the outbox owns retries and backoff, the sync engine owns links and cursors.

Keys are self-contained, so ``get``/``update``/``add_comment`` need no project: Redmine
``"123"``, GitHub ``"owner/repo#12"``, GitLab ``"group/project#12"``, Jira ``"PLAT-12"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.router.clock import ensure_utc, iso_z, parse_utc

# Listing starts this long before the cursor: trackers commit and index changes out of order
# (a transaction that stamped an earlier updated_at commits later; Jira's search index lags),
# and the keys already delivered inside the window are remembered so nothing comes twice.
CURSOR_OVERLAP = timedelta(minutes=2)
DEFAULT_PAGE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class RemoteIssue:
    """A remote issue as the sync engine sees it; ``status`` is the tracker's own word."""

    key: str
    url: str
    title: str
    description: str  # the body, without the marker footer
    status: str  # Redmine/Jira status name; GitHub/GitLab "open" | "closed"
    closed: bool
    created_at: datetime
    updated_at: datetime
    item_id: str | None = None  # from the marker line, when present
    priority: str | None = None  # the tracker's priority name (GitHub/GitLab: the priority label)
    labels: tuple[str, ...] = ()
    assignee: str | None = None  # login / username / account id

    @property
    def version(self) -> str:
        """A fingerprint of what the sync reads: two versions of an issue differ even when the
        tracker stamped both within one second (Redmine and GitHub stamp whole seconds)."""
        parts = (self.updated_at.isoformat(), self.title, self.description, self.status, str(self.closed),
                 self.priority or "", ",".join(self.labels), self.assignee or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class IssueDraft:
    """What the backlog wants a new remote issue to say (backlog words; the adapter maps them)."""

    item_id: str
    title: str
    description: str  # composed by the sync engine: the item's description and its web link
    status: str = "open"  # backlog status
    priority: str | None = None  # backlog priority P0..P3, through priority_map
    owner: str | None = None  # backlog owner, through assignees
    labels: tuple[str, ...] = ()  # added to the tracker's configured labels


@dataclass(frozen=True, slots=True)
class IssueUpdate:
    """The fields that changed; None leaves a field as it is on the tracker.

    ``description`` is the new body (the marker of ``item_id`` is kept); ``owner`` is the new
    backlog owner, and an owner the ``assignees`` map does not name unassigns the issue;
    ``labels`` are made present (labels people added on the tracker stay).
    """

    item_id: str
    title: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    owner: str | None = None
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the last pull stopped: the latest remote ``updated_at`` seen, and the issues already
    delivered within :data:`CURSOR_OVERLAP` of it (key → updated_at and version delivered)."""

    since: datetime
    seen: dict[str, tuple[datetime, str]] = field(default_factory=dict)

    @classmethod
    def start(cls, at: datetime) -> Cursor:
        return cls(ensure_utc(at))

    @property
    def query_since(self) -> datetime:
        """The time to ask the tracker for (earlier than ``since`` by the overlap)."""
        return self.since - CURSOR_OVERLAP

    def is_new(self, issue: RemoteIssue) -> bool:
        """Changed after the cursor: not this exact version delivered before."""
        if issue.updated_at < self.query_since:
            return False
        delivered = self.seen.get(issue.key)
        return delivered is None or delivered[1] != issue.version

    def advance(self, delivered: list[RemoteIssue], *, listed_at: datetime | None = None) -> Cursor:
        """Past the delivered issues; with ``listed_at`` (the tracker's own clock when it answered a
        listing that was read to its end), past that moment too: the overlap still covers what
        commits late, and a quiet cursor no longer stays on a burst of changes, re-listing all of
        them (ten pages for 1,000 issues) on every pull until some later change moves it."""
        since = max([self.since, *(i.updated_at for i in delivered), *([listed_at] if listed_at else [])])
        floor = since - CURSOR_OVERLAP
        seen = {k: v for k, v in self.seen.items() if v[0] >= floor}
        seen.update({i.key: (i.updated_at, i.version) for i in delivered if i.updated_at >= floor})
        return Cursor(since, seen)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the sync engine stores per tracker and project."""
        return {"since": iso_z(self.since), "seen": {k: [iso_z(t), v] for k, (t, v) in sorted(self.seen.items())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cursor:
        seen = {k: (parse_utc(t), str(v)) for k, (t, v) in (data.get("seen") or {}).items()}
        return cls(parse_utc(data["since"]), seen)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One pull: the issues changed after the cursor (oldest change first), the cursor to store
    once they are applied, and whether more changes are waiting (call again with ``cursor``)."""

    issues: list[RemoteIssue]
    cursor: Cursor
    more: bool = False


def page_of_changes(cursor: Cursor, listed: list[RemoteIssue], *, exhausted: bool, limit: int,
                    listed_at: datetime | None = None) -> ChangePage:
    """The shared tail of every ``list_changed_since``: drop what was delivered, cap, advance.

    ``listed`` is what the tracker returned for ``updated >= cursor.query_since`` in ascending
    ``updated_at`` order; when it is cut at ``limit`` new issues, the cursor stops at the last
    one kept, so the next call starts there and loses nothing.
    """
    fresh = sorted((i for i in listed if cursor.is_new(i)), key=change_order)
    kept = fresh[:limit]
    # What was not new is in ``seen`` already or older than the window: advancing over the kept
    # issues alone is exact, and a cut leaves the rest after ``since`` for the next call.
    more = not exhausted or len(fresh) > limit
    return ChangePage(kept, cursor.advance(kept, listed_at=None if more else listed_at), more=more)


def change_order(issue: RemoteIssue) -> tuple[datetime, str]:
    """Oldest change first; ties (one-second timestamps) in key order, numbers compared as
    numbers (``#9`` before ``#10``)."""
    return issue.updated_at, re.sub(r"[0-9]+", lambda m: m.group().zfill(20), issue.key)


def merge_labels(*groups: Iterable[str]) -> tuple[str, ...]:
    """Labels in first-seen order without repeats (configured, then the item's, then priority)."""
    return tuple(dict.fromkeys(label for group in groups for label in group))


class TrackerAdapter(Protocol):
    """One tracker kind behind one small interface (see the module docstring)."""

    name: str
    kind: str

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        """Open a remote issue with the mapped status, priority, labels and assignee and the marker."""
        ...

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        """Apply the changed fields (status through ``status_map``: a Redmine status, a Jira
        transition, GitHub/GitLab open/closed) and return the issue as it now is."""
        ...

    def get(self, key: str) -> RemoteIssue:
        ...

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        """The oldest issue of ``project`` whose description holds the item's marker, or None.

        ``created_since`` (when the engine recorded its intent to create) also scans issues
        created since then through the tracker's consistent listing, because search indexes
        lag (GitHub search, Jira Cloud): a crash right after a create still finds the issue.
        """
        ...

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        """Issues of ``project`` changed after ``cursor``, open and closed, oldest change first."""
        ...

    def add_comment(self, key: str, body: str) -> None:
        ...

    def key_for_url(self, url: str) -> str:
        """The key of a remote issue's web URL (``backlog tracker link ID URL``); ValueError if
        the URL is not an issue of this tracker."""
        ...

    def close(self) -> None:
        """Release the HTTP client."""
        ...
