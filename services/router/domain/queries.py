"""List filters and pagination, shared by every backend and the API."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, Strict

from services.router.domain.changes import RECORD_FIELDS
from services.router.domain.enums import ACTIVE_STATUSES, Priority, Status
from services.router.domain.models import Slug
from services.router.domain.strict import JSON_INTEGER, Flag
from services.router.domain.transitions import is_overdue

MAX_PAGE = 500
DEFAULT_PAGE = 50


class ItemQuery(BaseModel):
    """Filters are ANDed; results are ordered by id (creation order) and paged by cursor."""

    model_config = ConfigDict(extra="forbid")

    env: Slug | None = None
    service: Slug | None = None
    status: Status | None = None
    owner: Slug | None = None
    priority: Priority | None = None
    category: Slug | None = None
    overdue: Flag | None = None
    active: Flag | None = Field(default=None, description="open, in_progress or blocked")
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_PAGE), JSON_INTEGER] = DEFAULT_PAGE
    cursor: str | None = Field(default=None, max_length=64, description="id of the last item seen")

    def matches(self, record: dict[str, Any], today: date) -> bool:
        """The in-Python form of the filter; the Postgres store builds the same as SQL."""
        for name in ("env", "service", "owner", "category"):
            wanted = getattr(self, name)
            if wanted is not None and record[name] != wanted:
                return False
        if self.status is not None and record["status"] != self.status.value:
            return False
        if self.priority is not None and record["priority"] != self.priority.value:
            return False
        if self.active is not None and (record["status"] in ACTIVE_STATUSES) != self.active:
            return False
        if self.overdue is not None and is_overdue(record["status"], record["due_date"], today) != self.overdue:
            return False
        return not (self.cursor is not None and record["id"] <= self.cursor)


def check_fields(fields: Collection[str] | None) -> None:
    """``BacklogStore.list(fields=…)`` names record fields only: the same mistake fails the same
    way on every backend (Postgres would otherwise fail in SQL, the others not at all)."""
    unknown = set(fields or ()) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"not item record fields: {sorted(unknown)}")


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class OverdueIds(NamedTuple):
    """How many active items are past their due date, and the first ``limit`` of their ids
    (in id order): what the alert rules need, without reading the records."""

    total: int
    ids: list[str]
