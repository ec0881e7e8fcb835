"""The store interface: the ``BacklogStore`` protocol and the values it takes and returns.

Every backend applies the same pure planners from ``domain.changes``; a backend only decides
how a change is made durable. The memory and JSONL stores share ``indexed.IndexedStore`` (records
in ``index.ItemIndex``); Postgres and Auto implement the protocol themselves.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol, runtime_checkable

from services.router.clock import Clock, iso_z
from services.router.domain.changes import (
    Record,
    dedupe_key_of,
)
from services.router.domain.enums import EventType, Status
from services.router.domain.models import ItemInput
from services.router.domain.queries import ItemQuery, OverdueIds, Page
from services.router.domain.revisions import Revision
from services.router.errors import ValidationFailed

DEFAULT_OWNER = "oncall"


@dataclass(frozen=True, slots=True)
class UpsertRequest:
    """One item of a batch upsert; ``fallback_owner`` is used only when the item is created."""

    item: ItemInput
    fallback_owner: str = DEFAULT_OWNER


@dataclass(frozen=True, slots=True)
class WriteResult:
    action: str
    item: Record
    event: Record | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "item": self.item, "event": self.event}


@dataclass(slots=True)
class StoreStatus:
    backend: str
    degraded: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class BacklogStore(Protocol):
    """What every backend offers; the contract tests run against each one."""

    @property
    def backend(self) -> str:
        """``memory``, ``jsonl`` or ``postgres``: what serves the calls now (Auto: either of the last two)."""
    clock: Clock

    def get(self, item_id: str) -> Record | None: ...
    def get_by_dedupe_key(self, key: str) -> Record | None: ...
    def get_many_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, Record]: ...
    def list(self, query: ItemQuery, *, fields: Collection[str] | None = None) -> Page:
        """One page of ``query``. ``fields``: the only fields the caller reads; each record then
        holds at least those and ``id`` (a backend that must fetch rows fetches only those).
        ``meta.<key>`` names one key of ``meta``: ``meta`` then holds at least that key when the
        item has it (Postgres sends that key alone; the others return ``meta`` whole)."""
        ...

    def accepted_items(self, env: str | None = None) -> builtins.list[Record]:
        """Every item (any status) whose ``accepted`` is set, current or expired, in id order: few, by
        nature (a person accepts each), read by the expiry sweep and generation's suppression."""
        ...

    # Writes: ``actor`` is the account; ``on_behalf_of`` the person a delegate account named, if any.
    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER,
               on_behalf_of: str | None = None) -> WriteResult: ...
    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str,
                    on_behalf_of: str | None = None) -> builtins.list[WriteResult]: ...
    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "",
                   on_behalf_of: str | None = None) -> WriteResult: ...
    def add_comment(self, item_id: str, message: str, *, actor: str, on_behalf_of: str | None = None) -> Record: ...
    def revise(self, item_id: str, revision: Revision, *, actor: str, on_behalf_of: str | None = None) -> WriteResult:
        """A lifecycle change (``domain.revisions``), planned under the item's lock."""
        ...

    def add_note(self, item_id: str, kind: EventType, message: str, meta: Record, *, actor: str,
                 on_behalf_of: str | None = None) -> Record:
        """An event-only write other than a comment (``escalated``, a clearing's comment)."""
        ...

    def events(self, item_id: str) -> builtins.list[Record]: ...
    def dashboard(self, env: str | None = None) -> dict[str, Any]: ...
    def overdue_ids(self, env: str | None, priority: str | None, *, limit: int) -> OverdueIds: ...
    def envs(self) -> builtins.list[str]: ...
    def cleanup(self, retention_days: int) -> int: ...
    def set_owner(self, item_id: str, owner: str, *, actor: str, message: str = "",
                  on_behalf_of: str | None = None) -> WriteResult:
        """One ``owner_changed`` event (``domain.edits``); refused on a done or canceled item."""
        ...

    def set_due_date(self, item_id: str, due_date: date | None, *, actor: str, message: str = "",
                     on_behalf_of: str | None = None) -> WriteResult:
        """One ``due_date_changed`` event (``domain.edits``); refused on a done or canceled item."""
        ...

    def trends(self, env: str | None, service: str | None, weeks: int) -> builtins.list[Record]:
        """``weeks`` rows ending with the clock's ISO week, oldest first (``domain.trends``)."""
        ...

    def problems(self, env: str, service: str | None = None) -> builtins.list[Record]:
        """The env's problems, in order (``domain.problems``)."""
        ...

    def status(self) -> StoreStatus: ...
    def close(self) -> None: ...


def cleanup_cutoff(clock: Clock, retention_days: int) -> str:
    """Closed items whose ``updated_at`` is strictly before this timestamp are removed."""
    if retention_days < 0:
        raise ValidationFailed("retention_days must be >= 0", field="retention_days")
    return iso_z(clock.now() - timedelta(days=retention_days))


def dedupe_batch(requests: Sequence[UpsertRequest]) -> builtins.list[UpsertRequest]:
    """Last request wins per dedupe key, at the key's first place (one write per key): the item
    is created where applying the requests one by one would create it, so ids follow that order."""
    latest: dict[str, UpsertRequest] = {}
    for req in requests:
        latest[dedupe_key_of(req.item)] = req  # a dict keeps a key where it was first set
    return list(latest.values())
