"""Helpers of the Postgres store's bulk upsert path (``PostgresBacklogStore._upsert_bulk``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from services.router.domain.changes import Record

# A bulk upsert is planned and merged in this many parts (see ``bulk_parts``).
BULK_PARTS = 5


def numbered_record(cursor: Any) -> Callable[[Sequence[Any]], tuple[int, Record]]:
    """Row factory: (the row's number, the record of the other columns)."""
    names = [c.name for c in cursor.description or ()][1:]

    def make(values: Sequence[Any]) -> tuple[int, Record]:
        return values[0], dict(zip(names, values[1:], strict=True))

    return make


def bulk_parts(n: int) -> list[range]:
    """``range(n)`` cut into at most ``BULK_PARTS`` consecutive parts, each about twice the
    previous one: the first (planned before the server has anything to do) is small, and
    planning a part (~3x faster per item than the server merges one) ends before the server
    is done with the part before it. A fixed number of parts: round trips do not grow with n.
    """
    weights = [2**i for i in range(BULK_PARTS)]
    bounds = [0]
    for i in range(BULK_PARTS):
        bounds.append(round(n * sum(weights[: i + 1]) / sum(weights)))
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]
