"""I/O errors at the k-th write/fsync/rename: a failure is reported, never a success for unsynced data;
a failed operation leaves nothing visible, and the store works again once the fault is gone."""

from __future__ import annotations

import errno
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.errors import StoreUnavailable
from services.router.stores.jsonl import JsonlBacklogStore
from tests.conftest import NOW
from tests.factories import item
from tests.reliability.faults import fault
from tests.reliability.harness import list_all

Op = Callable[[JsonlBacklogStore], Any]


def snapshot(directory: Path) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    fresh = JsonlBacklogStore(directory, clock=FixedClock(NOW))
    records = list_all(fresh)
    return records, {str(r["id"]): [e["id"] for e in fresh.events(str(r["id"]))] for r in records}


def seeded(directory: Path, clock: FixedClock) -> JsonlBacklogStore:
    store = JsonlBacklogStore(directory, clock=clock)
    for i in range(4):
        store.upsert(item(f"k{i}"), actor="gen")
    done = store.get_by_dedupe_key("k3")
    assert done is not None
    store.set_status(done["id"], Status.DONE, actor="t")
    clock.advance(days=200)
    return store


def by_key(store: JsonlBacklogStore, key: str) -> str:
    rec = store.get_by_dedupe_key(key)
    assert rec is not None
    return str(rec["id"])


OPS: dict[str, Op] = {
    "create": lambda s: s.upsert(item("new", title="brand new"), actor="w"),
    "update": lambda s: s.upsert(item("k0", title="changed title"), actor="w"),
    "set_status": lambda s: s.set_status(by_key(s, "k1"), Status.BLOCKED, actor="w"),
    "comment": lambda s: s.add_comment(by_key(s, "k2"), "note", actor="w"),
    "cleanup": lambda s: s.cleanup(180),
}


@pytest.mark.parametrize("op_name", sorted(OPS))
@pytest.mark.parametrize("call", ["write", "fsync", "replace"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_fault_at_every_call(tmp_path: Path, op_name: str, call: str, code: int) -> None:
    op = OPS[op_name]
    k = 1
    while True:
        directory = tmp_path / f"k{k}"
        clock = FixedClock(NOW - timedelta(days=200))
        store = seeded(directory, clock)
        before = snapshot(directory)
        with pytest.MonkeyPatch.context() as mp, fault(mp, call, k, code) as proxy:
            try:
                op(store)
                failed = False
            except StoreUnavailable:
                failed = True
        if failed:
            now = snapshot(directory)
            # cleanup may fail after a rename (reported, since the directory fsync failed): the
            # items are then entirely old or entirely new, and every live item keeps its events
            expired = next(r["id"] for r in before[0] if r["dedupe_key"] == "k3")
            live_before = [r for r in before[0] if r["id"] != expired]
            partial_cleanup = op_name == "cleanup" and now[0] in (before[0], live_before) and all(
                now[1][i] == ev for i, ev in before[1].items() if i != expired)
            assert now == before or partial_cleanup, f"{op_name}: failed at {call} #{k} but changed the store"
            op(store)  # the fault is gone: the same operation now succeeds
            assert snapshot(directory) != before or op_name == "cleanup"
        if proxy.calls < k:  # the k-th call never happened: the operation completed untouched
            assert not failed
            break
        k += 1
        assert k < 50
    after = snapshot(directory)
    if op_name == "cleanup":
        assert by_key_missing(after, "k3")


def by_key_missing(snap: tuple[list[dict[str, Any]], dict[str, list[str]]], key: str) -> bool:
    return all(r["dedupe_key"] != key for r in snap[0])
