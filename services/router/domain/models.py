"""Item, event and input models (DESIGN §3).

Stores keep items as plain JSON dicts (the form written to disk and sent over HTTP); these
models validate what comes in and describe what goes out. The limits are named constants
(``MAX_SLUG``, ``MAX_DEDUPE_KEY``, …) so code that checks values itself (generation's fast
path) imports them rather than copying them.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import date
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    TypeAdapter,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from typing_extensions import TypeAliasType

from services.router.domain.enums import EventType, Priority, Source, Status
from services.router.domain.strict import IsoDate

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
DEDUPE_KEY_CHARS = r"[A-Za-z0-9._-]"  # and ":" between the parts
MAX_SLUG = 64
MAX_DEDUPE_KEY = 300
MAX_REF = 500
MAX_TITLE = 200
MAX_TEXT = 10_000


# Bidirectional override and isolate controls reorder what a reader sees ("Trojan Source"): a
# title could show one thing and hold another. Refused in titles, descriptions and comments.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# The same rules as JSON Schema patterns (``SchemaPattern``), so the OpenAPI document states them.
NO_NUL_PATTERN = r"^[^\x00]*$"
PLAIN = r"[^\x00\u202a-\u202e\u2066-\u2069]"
PLAIN_TEXT_PATTERN = rf"^{PLAIN}*$"
PLAIN_LINE_PATTERN = rf"^{PLAIN}*[^\s\x00\u202a-\u202e\u2066-\u2069]{PLAIN}*$"  # and not only whitespace


def no_nul(value: str) -> str:
    """PostgreSQL text and jsonb cannot hold U+0000; refusing it everywhere keeps backends in agreement."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (U+0000)")
    return value


def plain_text(value: str) -> str:
    """No NUL and no bidirectional override or isolate control (they can disguise what a reader sees)."""
    no_nul(value)
    if not BIDI_CONTROLS.isdisjoint(value):
        found = sorted({f"U+{ord(ch):04X}" for ch in value if ch in BIDI_CONTROLS})
        raise ValueError(f"must not contain bidirectional override or isolate controls ({', '.join(found)})")
    return value


class SchemaExtra:
    """Adds keys to a type's JSON Schema without changing its validation (a validator does that,
    with a clearer message): the OpenAPI document then states the rule for clients and for
    schema-driven tests."""

    def __init__(self, **extra: Any) -> None:
        self.extra = extra

    def __get_pydantic_json_schema__(self, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema.update(self.extra)
        return schema


def schema_pattern(pattern: str) -> SchemaExtra:
    return SchemaExtra(pattern=pattern)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=MAX_SLUG)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE, strip_whitespace=True),
                  AfterValidator(plain_text), schema_pattern(PLAIN_LINE_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(plain_text),
                 schema_pattern(PLAIN_TEXT_PATTERN)]
CommentText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, strip_whitespace=True),
                        AfterValidator(plain_text), schema_pattern(PLAIN_LINE_PATTERN)]
DedupeKey = Annotated[str, StringConstraints(pattern=rf"^(?:{DEDUPE_KEY_CHARS}|:)+$", min_length=1,
                                             max_length=MAX_DEDUPE_KEY)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REF), AfterValidator(no_nul),
                schema_pattern(NO_NUL_PATTERN)]
# Who an event is by: an account name (``alice``, ``scheduler``), or ``tracker:<name>`` when tracker
# sync brings a remote change back. The namespace keeps the two apart: account names cannot hold a
# ``:`` (``config/rbac.yml``), so no API key can write as a tracker.
Actor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*(?::[a-z0-9][a-z0-9._-]*)?$",
                                         max_length=64)]
TRACKER_ACTOR_PREFIX = "tracker:"
ItemId = Annotated[str, StringConstraints(pattern=r"^bl_[0-9a-f]{12,40}$")]
# What ``meta`` may hold, for the JSON Schema: any JSON whose texts (keys too) hold no NUL.
MetaText = Annotated[str, schema_pattern(NO_NUL_PATTERN)]
MetaInt = Annotated[int, SchemaExtra(minimum=-(2**53 - 1), maximum=2**53 - 1)]  # exact in every JSON reader
MetaValue = TypeAliasType(
    "MetaValue", "MetaText | MetaInt | float | bool | list[MetaValue] | MetaObject | None")
MetaObject = Annotated[dict[MetaText, MetaValue], SchemaExtra(additionalProperties=False)]


class SchemaOf:
    """Gives a field the JSON Schema of another type (``MetaObject``, a webhook payload model) while
    it validates as declared: the schema states the real shape, validation stays where it is."""

    def __init__(self, shape: Any, **extra: Any) -> None:
        self.shape = shape
        self.extra = extra

    def __get_pydantic_json_schema__(self, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(TypeAdapter(self.shape).core_schema)
        schema.update(self.extra)
        return schema


META_SCHEMA = SchemaOf(MetaObject, description="Any JSON object without NUL characters, at most 65536 bytes as JSON")


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
    due_date: IsoDate | None = None
    source: Source = Source.MANUAL
    dedupe_key: DedupeKey | None = None
    evidence_refs: list[Ref] = Field(default_factory=list, max_length=100)
    tags: list[Slug] = Field(default_factory=list, max_length=50)
    meta: Annotated[dict[str, Any], META_SCHEMA] = Field(default_factory=dict)

    @field_validator("meta")
    @classmethod
    def _meta_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = meta_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @classmethod
    def prevalidated(cls, data: dict[str, Any]) -> ItemInput:
        """The model ``ItemInput(**data)`` returns, built without the validation pass.

        Only for a caller that has checked every value against the constraints above and holds
        it in the type validation leaves (``str``, ``Priority``, ``Source``, ``date``, lists, a
        dict), as weekly generation does for the thousands of items a run makes. ``data`` holds
        the fields the caller sets (they become ``model_fields_set``); the others take their
        defaults. Pydantic's public ``model_copy`` of a template made once per set of fields (by
        ``model_construct``), so an upgrade that changes the model's internals cannot break it,
        at about a quarter of the cost of ``model_construct`` itself.
        """
        key = frozenset(data)
        template = _TEMPLATES.get(key)
        if template is None:
            template = _TEMPLATES[key] = cls.model_construct(set(data), **data)
        return template.model_copy(update=data)


_TEMPLATES: dict[frozenset[str], ItemInput] = {}


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
    accepted: dict[str, Any] | None = Field(
        default=None, description="the accepted risk, {until, reason, by, at}; null when not accepted")
    rev: int = 1
    week: str | None = Field(default=None, description="the ISO week in the dedupe key; null for manual items")


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
    on_behalf_of: str | None = Field(default=None, description="the person a delegate account acted for")
