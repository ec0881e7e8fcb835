"""Tracker sync: every routed item also lives in Redmine, GitHub Issues, GitLab or Jira.

Two layers. The adapters: ``config`` (``config/trackers.yml``) → ``build_adapter`` → a
:class:`TrackerAdapter` per kind, which only translates and classifies failures (:mod:`.errors`).
The sync on top: ``plan`` (pure: what differs, backoff), ``outbox`` (one run; what a failure
means), ``pull`` and ``push``, ``engine`` (a run per tracker under its lock), ``status``, and
``service`` (what the tool, the CLI and the webhook route call); ``webhooks`` authenticates a
tracker's webhook and schedules a pull, ``kicker`` runs it in the background. Links, the outbox
and cursors are stored with the items (``stores/tracker_links*``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from services.router.clock import Clock
from services.router.trackers.config import TrackerConfig, TrackersConfig, load_trackers, trackers_config
from services.router.trackers.errors import TrackerError, TrackerPermanent, TrackerRateLimited, TrackerRetryable
from services.router.trackers.http import DEFAULT_TIMEOUT_SECONDS
from services.router.trackers.model import ChangePage, Cursor, IssueDraft, IssueUpdate, RemoteIssue, TrackerAdapter

__all__ = [
    "ChangePage", "Cursor", "IssueDraft", "IssueUpdate", "RemoteIssue", "TrackerAdapter", "TrackerConfig",
    "TrackerError", "TrackerPermanent", "TrackerRateLimited", "TrackerRetryable", "TrackersConfig",
    "build_adapter", "load_trackers", "trackers_config",
]


def build_adapter(name: str, config: TrackerConfig, *, transport: httpx.BaseTransport | None = None,
                  environ: Mapping[str, str] | None = None, clock: Clock | None = None,
                  timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                  observe: Callable[[str], None] | None = None) -> TrackerAdapter:
    """The adapter for one configured tracker (``transport`` lets tests serve a fake; ``observe``
    hears the outcome of every request it sends)."""
    from services.router.trackers.github import GitHubAdapter
    from services.router.trackers.gitlab import GitLabAdapter
    from services.router.trackers.jira import JiraAdapter
    from services.router.trackers.redmine import RedmineAdapter

    kinds: dict[str, type[RedmineAdapter | GitHubAdapter | GitLabAdapter | JiraAdapter]] = {
        "redmine": RedmineAdapter, "github": GitHubAdapter, "gitlab": GitLabAdapter, "jira": JiraAdapter,
    }
    adapter = kinds[config.kind](name, config, transport=transport, environ=environ, clock=clock,
                                 timeout_seconds=timeout_seconds)
    adapter.observer = observe
    return adapter
