"""List filters and pagination, shared by every backend and the API."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

from services.router.domain.acceptance import hold
from services.router.domain.changes import RECORD_FIELDS
from services.router.domain.enums import ACTIVE_STATUSES, Priority, Status
from services.router.domain.models import Slug, no_nul
from services.router.domain.sorting import DEFAULT_SORT, Position, Sort, decode_cursor
from services.router.domain.strict import JSON_INTEGER, Flag
from services.router.domain.transitions import is_overdue

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_SEARCH = 100
Search = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SEARCH), AfterValidator(no_nul)]


class ItemQuery(BaseModel):
    """Filters are ANDed; results are ordered by ``sort`` (creation order by default) and paged by
    cursor (``domain.sorting``)."""

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
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the previous page "
                               "(with the default sort: the id of the last item seen)")
    sort: Sort = Field(default=DEFAULT_SORT, description="created_at (creation order), due_date (undated last), "
                       "priority or updated_at; `-` first for descending; ties by id")
    q: Search | None = Field(default=None, description="a part of the title, any letter case")

    def position(self) -> Position | None:
        """The decoded cursor (None without one); a cursor of another sort is refused."""
        return decode_cursor(self.sort, self.cursor) if self.cursor is not None else None

    def matches_filters(self, record: dict[str, Any], today: date) -> bool:
        """The in-Python form of the filters (the cursor: ``domain.sorting.after``); the Postgres
        store builds the same as SQL."""
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
        if self.overdue is not None and is_overdue(
                record["status"], record["due_date"], today, hold(record.get("accepted"))) != self.overdue:
            return False
        return self.q is None or self.q.lower() in record["title"].lower()


RECORD_FIELD_SET = frozenset(RECORD_FIELDS)
# ``meta.weeks_open`` in ``fields``: only that key of ``meta`` is read (a plain name, never SQL).
META_KEY_RE = re.compile(r"^meta\.([A-Za-z0-9_]{1,64})$")


def check_fields(fields: Collection[str] | None) -> None:
    """``BacklogStore.list(fields=…)`` names record fields, or keys of ``meta`` as ``meta.<key>``:
    the same mistake fails the same way on every backend (Postgres would otherwise fail in SQL,
    the others not at all)."""
    unknown = {f for f in fields or () if f not in RECORD_FIELD_SET and META_KEY_RE.match(f) is None}
    if unknown:
        raise ValueError(f"not item record fields: {sorted(unknown)} (a key of meta is named meta.<key>)")


def meta_keys(fields: Collection[str]) -> list[str]:
    """The ``meta`` keys ``fields`` names (``meta.weeks_open`` → ``weeks_open``), in order."""
    return [m.group(1) for f in fields if (m := META_KEY_RE.match(f)) is not None]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class OverdueIds(NamedTuple):
    """How many active items are past their due date, and the first ``limit`` of their ids
    (in id order): what the alert rules need, without reading the records."""

    total: int
    ids: list[str]
