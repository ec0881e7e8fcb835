"""``sort`` and ``q`` of the item list on every backend: the same order, page by page, as the test
works it out itself, and cursors that keep their place while others write."""

from __future__ import annotations

import random
from typing import Any, get_args

import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.domain.queries import ItemQuery
from services.router.domain.sorting import Sort
from services.router.errors import ValidationFailed
from services.router.stores.base import BacklogStore
from tests.conftest import AUTO_BACKENDS, BACKENDS
from tests.factories import item

TITLES = ["Patch OpenSSL in the gateway", "GATEWAY latency review", "Rotate payment keys", "Écoute: the auth queue",
          "Retry storms in search", "Gateway 5xx budget"]


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seed(store: BacklogStore, clock: FixedClock, n: int = 17) -> list[dict[str, Any]]:
    rng = random.Random(7)
    for i in range(n):
        clock.advance(minutes=rng.randint(1, 30))
        due = rng.choice([None, "2026-11-20", "2026-12-01", "2026-12-24"])  # ties on purpose
        record = store.upsert(item(f"k{i}", title=f"{rng.choice(TITLES)} #{i}", priority=rng.choice(["P0", "P1", "P3"]),
                                   **({"due_date": due} if due else {})), actor="gen").item
        if rng.random() < 0.4:
            clock.advance(minutes=1)
            store.set_status(record["id"], Status.IN_PROGRESS, actor="t")
    clock.advance(minutes=3)
    return store.list(ItemQuery(limit=500)).items


def expected(records: list[dict[str, Any]], sort: str) -> list[str]:
    """The order, spelled out: value then id, reversed for ``-``; undated items last either way."""
    field = {"created_at": "id"}.get(sort.lstrip("-"), sort.lstrip("-"))
    rows = sorted(records, key=lambda r: (r[field], r["id"]) if r[field] is not None else ("", r["id"]),
                  reverse=sort.startswith("-"))
    dated = [r["id"] for r in rows if r[field] is not None]
    undated = [r["id"] for r in rows if r[field] is None]
    return dated + undated


def pages(store: BacklogStore, cursor: str | None = None, **query: Any) -> list[str]:
    seen: list[str] = []
    while True:
        page = store.list(ItemQuery(limit=4, cursor=cursor, **query))
        seen += [r["id"] for r in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", get_args(Sort))
def test_every_sort_pages_in_its_order(store: BacklogStore, clock: FixedClock, sort: str) -> None:
    records = seed(store, clock)
    assert pages(store, sort=sort) == expected(records, sort)
    active = [r for r in records if r["status"] != "done"]
    assert pages(store, sort=sort, status="in_progress") == expected(
        [r for r in active if r["status"] == "in_progress"], sort)


def test_search_is_a_case_insensitive_part_of_the_title(store: BacklogStore, clock: FixedClock) -> None:
    records = seed(store, clock)
    gateway = [r for r in records if "gateway" in r["title"].lower()]
    assert gateway and len(gateway) < len(records)
    assert pages(store, q="GateWay", sort="-due_date") == expected(gateway, "-due_date")
    assert pages(store, q="écoute") == [r["id"] for r in records if r["title"].startswith("Écoute")]
    assert pages(store, q="%") == [] and pages(store, q="_") == []  # no wildcards
    with pytest.raises(ValueError):
        ItemQuery(q="x" * 101)


def test_a_cursor_keeps_its_place_while_others_write(store: BacklogStore, clock: FixedClock) -> None:
    records = seed(store, clock)
    first = store.list(ItemQuery(limit=5, sort="-updated_at"))
    assert first.next_cursor is not None
    clock.advance(hours=1)
    newest = store.upsert(item("late", title="Late arrival"), actor="gen").item  # sorts first: not on page 2
    rest = pages(store, sort="-updated_at", cursor=first.next_cursor)
    assert [r["id"] for r in first.items] + rest == expected(records, "-updated_at")
    assert newest["id"] not in rest


def test_a_cursor_of_another_sort_is_refused(store: BacklogStore, clock: FixedClock) -> None:
    seed(store, clock)
    cursor = store.list(ItemQuery(limit=2, sort="due_date")).next_cursor
    assert cursor is not None
    for sort, bad in [("-due_date", cursor), ("priority", cursor), ("due_date", "not-a-cursor"),
                      ("updated_at", "bl_0000000000000000")]:
        with pytest.raises(ValidationFailed) as refused:
            store.list(ItemQuery(sort=sort, cursor=bad))
        assert refused.value.field == "cursor"
