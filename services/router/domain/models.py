"""Item, event and input models (DESIGN §3).

Stores keep items as plain JSON dicts (the form written to disk and sent over HTTP); these
models validate what comes in and describe what goes out. ``BacklogItem.from_record`` skips
re-validation because records only ever come from validated writes.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import date
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.router.domain.enums import EventType, Priority, Source, Status

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
MAX_TITLE = 200
MAX_TEXT = 10_000


def no_nul(value: str) -> str:
    """PostgreSQL text and jsonb cannot hold U+0000; refusing it everywhere keeps backends in agreement."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (U+0000)")
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE, strip_whitespace=True),
                  AfterValidator(no_nul)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(no_nul)]
CommentText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, strip_whitespace=True),
                        AfterValidator(no_nul)]
DedupeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]+$", min_length=1, max_length=300)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(no_nul)]
# Who an event is by: an account name (``alice``, ``scheduler``), or ``tracker:<name>`` when tracker
# sync brings a remote change back. The namespace keeps the two apart: account names cannot hold a
# ``:`` (``config/rbac.yml``), so no API key can write as a tracker.
Actor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*(?::[a-z0-9][a-z0-9._-]*)?$",
                                         max_length=64)]
TRACKER_ACTOR_PREFIX = "tracker:"
ItemId = Annotated[str, StringConstraints(pattern=r"^bl_[0-9a-f]{12,40}$")]

MAX_META_BYTES = 64 * 1024


_last_stamp = [0, 0]  # [milliseconds, counter] of the previous id made by this process
# Seeded from the OS and re-seeded in every forked child, so processes never share a sequence;
# uniqueness comes from the timestamp + counter, the random part only separates processes.
_random = random.Random(secrets.randbits(64))
os.register_at_fork(after_in_child=lambda: _random.seed(secrets.randbits(64)))


def new_id(prefix: str) -> str:
    """``bl_``/``ev_`` + 12 hex of milliseconds + 4 hex counter + 8 random hex.

    Strictly increasing within a process (the counter breaks ties inside one millisecond) and
    unique across processes, so ``ORDER BY id`` is a stable creation order on every backend.
    """
    ms = int(time.time() * 1000)
    if ms <= _last_stamp[0]:
        ms, counter = _last_stamp[0], _last_stamp[1] + 1
        if counter > 0xFFFF:
            ms, counter = ms + 1, 0
    else:
        counter = 0
    _last_stamp[0], _last_stamp[1] = ms, counter
    return f"{prefix}{ms:012x}{counter:04x}{_random.getrandbits(32):08x}"


class ItemInput(BaseModel):
    """An upsert request: what a generator or a person may set on an item."""

    model_config = ConfigDict(extra="forbid")

    env: Slug
    service: Slug
    category: Slug
    title: Title
    description: Text = ""
    priority: Priority = Priority.P2
    owner: Slug | None = Field(
        default=None, description="Explicit owner: sets the owner even on an existing item."
    )
    due_date: date | None = None
    source: Source = Source.MANUAL
    dedupe_key: DedupeKey | None = None
    evidence_refs: list[Ref] = Field(default_factory=list, max_length=100)
    tags: list[Slug] = Field(default_factory=list, max_length=50)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("meta")
    @classmethod
    def _meta_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = meta_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @classmethod
    def prevalidated(cls, data: dict[str, Any], fields_set: set[str]) -> ItemInput:
        """The model ``ItemInput(**values)`` returns, built without the validation pass.

        Only for a caller that has checked every value against the constraints above and holds
        it in the type validation leaves (``str``, ``Priority``, ``Source``, ``date``, lists, a
        dict), as weekly generation does for the thousands of items a run makes. ``data`` has
        every field, in declaration order, and becomes the model's fields (not copied);
        ``fields_set`` is the names the caller gave (``model_fields_set``).
        """
        item = cls.__new__(cls)
        _setattr(item, "__dict__", data)
        _setattr(item, "__pydantic_fields_set__", fields_set)
        _setattr(item, "__pydantic_extra__", None)
        _setattr(item, "__pydantic_private__", None)
        return item


_setattr = object.__setattr__


def meta_problem(value: dict[str, Any]) -> str | None:
    """Why ``value`` cannot be an item's meta (not JSON, too large, a NUL), or None."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        return f"meta must be JSON: {exc}"
    if len(encoded) > MAX_META_BYTES:
        return f"meta is {len(encoded)} bytes; at most {MAX_META_BYTES}"
    if b"\\u0000" in encoded and _holds_nul(value):  # the walk only when the encoding hints at one
        return "meta must not contain NUL characters (U+0000)"
    return None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    message: Text = ""


class CommentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: CommentText


class BacklogItem(BaseModel):
    """An item as stored and returned."""

    model_config = ConfigDict(extra="ignore")

    id: str
    env: str
    service: str
    category: str
    title: str
    description: str
    priority: Priority
    status: Status
    owner: str
    due_date: date | None
    created_at: str
    updated_at: str
    source: Source
    dedupe_key: str
    evidence_refs: list[str]
    tags: list[str]
    meta: dict[str, Any]
    rev: int = 1

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BacklogItem:
        return cls.model_validate(record)


class BacklogEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    item_id: str
    ts: str
    type: EventType
    actor: str
    message: str
    meta: dict[str, Any]
    item_rev: int | None = None
