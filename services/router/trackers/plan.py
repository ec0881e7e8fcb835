"""What a sync should do, decided from the item, its link and the remote issue — pure, no I/O.

The backlog is the source of truth, so the push side is a comparison: the fields an item
wants the tracker to show (``desired``) against what the link says was last pushed. Nothing is
queued when an item changes; a change not pushed yet is simply still a difference at the next
run, which is why a tracker that is down for hours loses nothing.

The pull side only carries the remote *state* back: closed remotely → the mapped closed status
(default ``done``), reopened → ``open``. When both sides changed since the last sync, the later
change wins and the other one is kept as a comment event (``conflict_note``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.router.clock import iso_z, parse_utc
from services.router.domain.enums import ACTIVE_STATUSES, CLOSED_STATUSES, Status
from services.router.stores.tracker_links import SyncWork, TrackerLink
from services.router.trackers.config import TrackersConfig
from services.router.trackers.model import RemoteIssue

PUSHED_FIELDS = ("title", "description", "priority", "status", "owner")
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 6 * 3600.0
KIND_NAMES = {"redmine": "Redmine", "github": "GitHub", "gitlab": "GitLab", "jira": "Jira"}


def body_for(item: Mapping[str, Any], public_url: str | None) -> str:
    """The remote description above the marker: the item's description and its web page."""
    parts = [str(item.get("description") or "").strip()]
    if public_url:
        parts.append(f"Backlog item: {public_url.rstrip('/')}/items/{item['id']}")
    return "\n\n".join(p for p in parts if p)


def desired(item: Mapping[str, Any], public_url: str | None) -> dict[str, Any]:
    """The fields the tracker should show, in backlog words (the adapter maps them)."""
    return {"title": item["title"], "description": body_for(item, public_url), "priority": item["priority"],
            "status": item["status"], "owner": item["owner"]}


def changed_fields(wanted: Mapping[str, Any], pushed: Mapping[str, Any]) -> list[str]:
    return [name for name in PUSHED_FIELDS if wanted.get(name) != pushed.get(name)]


def pulled_status(config: Any, current: str, issue: RemoteIssue) -> str | None:
    """The backlog status the remote issue's open/closed state asks for, or None (nothing to do).

    Only the open/closed state travels back (what every tracker has): closed remotely moves an
    active item to the closed status ``status_map`` names for the remote status (else ``done``);
    reopened moves a done/canceled item to ``open``. Moves among active statuses stay the
    backlog's own.
    """
    if issue.closed and current in ACTIVE_STATUSES:
        target = config.backlog_status_for(issue.status, current, closed=True)
        return str(target) if target in CLOSED_STATUSES else Status.DONE.value
    if not issue.closed and current in CLOSED_STATUSES:
        return Status.OPEN.value
    return None


def remote_changed(link: TrackerLink, issue: RemoteIssue) -> bool:
    """The remote open/closed state differs from what the link saw last."""
    return link.remote.get("closed") != issue.closed


def remote_state(issue: RemoteIssue) -> dict[str, Any]:
    return {"status": issue.status, "closed": issue.closed, "version": issue.version,
            "updated_at": iso_z(issue.updated_at)}


@dataclass(frozen=True, slots=True)
class StateConflict:
    """Both sides changed the state since the last sync; ``remote_wins`` when the tracker's is later."""

    remote_wins: bool
    note: str


def conflict(link: TrackerLink, item: Mapping[str, Any], issue: RemoteIssue, *, backlog_changed_at: datetime,
             tracker: str, kind: str) -> StateConflict | None:
    """A conflict when the backlog's status also moved since it was last pushed."""
    if item["status"] == link.pushed.get("status"):
        return None
    remote_at = issue.updated_at
    word = "closed" if issue.closed else "reopened"
    where = f"{KIND_NAMES.get(kind, kind)} issue {issue.key} ({issue.url})"
    backlog_side = f"the backlog's move to {item['status']} at {iso_z(backlog_changed_at)}"
    remote_side = f"{where} was {word} ({issue.status}) at {iso_z(remote_at)}"
    if remote_at > backlog_changed_at:
        return StateConflict(True, f"Sync conflict with {tracker}: {remote_side}, after {backlog_side}; the later "
                              f"change wins, so the item follows the tracker (kept here: {backlog_side}).")
    return StateConflict(False, f"Sync conflict with {tracker}: {remote_side}, before {backlog_side}; the later "
                           f"change wins, so the tracker is told {item['status']} (kept here: {remote_side}).")


def status_message(kind: str, issue: RemoteIssue) -> str:
    word = "closed" if issue.closed else "reopened"
    return f"{word} in {KIND_NAMES.get(kind, kind)} ({issue.status}): {issue.url}"


def backoff_seconds(attempts: int, retry_after_seconds: float | None = None) -> float:
    """Exponential (1 min doubling, at most 6 h), never sooner than the tracker asked."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(0, attempts - 1))
    return max(delay, retry_after_seconds or 0.0)


def next_attempt(now: datetime, attempts: int, retry_after_seconds: float | None = None) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempts, retry_after_seconds))


def config_digest(config: TrackersConfig, tracker: str) -> str:
    """Changes when the tracker's configuration or the routes change: a parked item is tried again."""
    text = config.trackers[tracker].model_dump_json() + "|" + "|".join(r.model_dump_json() for r in config.routes)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def waiting(work: SyncWork | None, *, now: datetime, rev: int | None, digest: str) -> str | None:
    """Why an item's remote work must not be tried in this run: ``parked`` (refused for good, and
    neither the item nor the configuration changed since), ``backoff`` (a retry not due yet)."""
    if work is None or work.kind == "pull":
        return None
    if work.parked:
        return "parked" if work.parked_rev == rev and work.parked_config == digest else None
    if work.next_attempt_at is not None and parse_utc(work.next_attempt_at) > now:
        return "backoff"
    return None
