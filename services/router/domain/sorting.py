"""Sort orders of the item list and their keyset cursors, the same on every backend.

``created_at`` (the default) is creation order: item ids are creation-ordered, so it is id
order and its cursor is the last id seen, as it always was. The other orders — ``due_date``,
``priority``, ``updated_at``, each with ``-`` for descending — break ties by id in the same
direction and put items without a due date last either way (they have no date to sort by).
Their cursor is an opaque token holding the sort, the last row's sort value and its id, so a
page is stable while others write and a cursor is never read under another sort.

The order, spelled out once for the in-Python backends (``order``, ``after``) and once as SQL
by the Postgres store (``stores/pg_sql.sort_sql``), which the contract tests hold equal.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import orjson

from services.router.errors import ValidationFailed

Sort = Literal["created_at", "-created_at", "due_date", "-due_date", "priority", "-priority", "updated_at",
               "-updated_at"]
DEFAULT_SORT: Sort = "created_at"
Record = dict[str, Any]


class SortOrder(NamedTuple):
    field: str  # the record field sorted by ("id" for creation order)
    descending: bool


def sort_order(sort: str) -> SortOrder:
    name = sort.removeprefix("-")
    return SortOrder("id" if name == "created_at" else name, sort.startswith("-"))


class Position(NamedTuple):
    """Where a cursor points: the last row's sort value (None: no due date) and id."""

    value: Any
    id: str


def encode_cursor(sort: str, record: Record) -> str:
    """The cursor after ``record``: its id for creation order, else a token (``decode_cursor``)."""
    order = sort_order(sort)
    if order.field == "id":
        return str(record["id"])
    raw = orjson.dumps([sort, record[order.field], record["id"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> Position:
    order = sort_order(sort)
    if order.field == "id":
        return Position(cursor, cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, item_id = orjson.loads(raw)
        valid = isinstance(item_id, str) and (value is None or isinstance(value, str))
    except (binascii.Error, ValueError, TypeError):
        made_for, valid = None, False
    if not valid or made_for != sort:
        raise ValidationFailed(f"cursor: not a cursor of sort={sort}; pass the next_cursor of the previous page, "
                               "with the same sort", field="cursor")
    return Position(value, item_id)


def _ascending_key(order: SortOrder, record: Record) -> tuple[Any, ...]:
    return (record[order.field], record["id"]) if order.field != "id" else (record["id"],)


def order(records: Iterable[Record], sort: str) -> list[Record]:
    """``records`` in ``sort``'s order (nulls last in both directions, ties by id)."""
    spec = sort_order(sort)
    records = list(records)
    present = [r for r in records if r[spec.field] is not None]
    missing = [r for r in records if r[spec.field] is None] if spec.field == "due_date" else []
    present.sort(key=lambda r: _ascending_key(spec, r), reverse=spec.descending)
    missing.sort(key=lambda r: r["id"], reverse=spec.descending)
    return present + missing


def after(record: Record, sort: str, position: Position) -> bool:
    """Whether ``record`` comes after the cursor's position in ``sort``'s order."""
    spec = sort_order(sort)
    if spec.field == "id":
        return bool(record["id"] < position.id if spec.descending else record["id"] > position.id)
    value = record[spec.field]
    if position.value is None:  # the cursor is among the undated, which come last
        if value is not None:
            return False
        return bool(record["id"] < position.id if spec.descending else record["id"] > position.id)
    if value is None:
        return True
    mine, theirs = (value, record["id"]), (position.value, position.id)
    return bool(mine < theirs if spec.descending else mine > theirs)
