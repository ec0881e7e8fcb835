"""The adapter of a dry run: it sends nothing, so any call is a bug in the engine."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from services.router.trackers.model import DEFAULT_PAGE_LIMIT, ChangePage, Cursor, IssueDraft, IssueUpdate, RemoteIssue


def _refuse() -> NoReturn:
    raise RuntimeError("a dry run sends nothing to a tracker")


class OfflineAdapter:
    name = "offline"
    kind = "offline"

    def create(self, project: str, draft: IssueDraft) -> RemoteIssue:
        _refuse()

    def update(self, key: str, change: IssueUpdate) -> RemoteIssue:
        _refuse()

    def get(self, key: str) -> RemoteIssue:
        _refuse()

    def find_by_marker(self, project: str, item_id: str, *,
                       created_since: datetime | None = None) -> RemoteIssue | None:
        _refuse()

    def list_changed_since(self, project: str, cursor: Cursor, *, limit: int = DEFAULT_PAGE_LIMIT) -> ChangePage:
        _refuse()

    def add_comment(self, key: str, body: str) -> None:
        _refuse()

    def key_for_url(self, url: str) -> str:
        _refuse()

    def close(self) -> None:
        """Nothing to release."""


OFFLINE = OfflineAdapter()
