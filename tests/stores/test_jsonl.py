"""JSONL durability and multi-process behaviour (DESIGN §8)."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.domain.queries import ItemQuery
from services.router.stores.jsonl import JsonlBacklogStore
from tests.conftest import NOW
from tests.factories import item


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "backlog"


def open_store(directory: Path) -> JsonlBacklogStore:
    return JsonlBacklogStore(directory, clock=FixedClock(NOW))


class TestTornTail:
    @pytest.mark.parametrize("cut", [1, 2, 10, 40, -2, -1])
    def test_torn_last_line_is_skipped_repaired_and_next_write_readable(
        self, directory: Path, cut: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = open_store(directory)
        a = store.upsert(item("k1"), actor="gen").item
        items_file = directory / "items.jsonl"
        good = items_file.read_bytes()
        torn = orjson.dumps({**a, "title": "half written", "rev": 2}) + b"\n"
        with items_file.open("ab") as fh:  # a crash mid-write leaves part of a line
            fh.write(torn[:cut] if cut > 0 else torn[: len(torn) + cut])

        reader = open_store(directory)
        assert reader.get(a["id"]) == a  # the torn line is not visible

        with caplog.at_level(logging.WARNING, logger="backlog_store"):
            b = reader.upsert(item("k2"), actor="gen").item
        assert "skipping torn line" in caplog.text
        assert items_file.read_bytes().startswith(good)
        assert all(orjson.loads(line) for line in lines(items_file))
        fresh = open_store(directory)
        assert fresh.get(b["id"]) == b and fresh.get(a["id"]) == a

    def test_unreadable_line_in_the_middle_is_skipped_and_counted(self, directory: Path) -> None:
        store = open_store(directory)
        a = store.upsert(item("k1"), actor="gen").item
        with (directory / "items.jsonl").open("ab") as fh:
            fh.write(b"\x00\x00\x00garbage\n")
            fh.write(b"\xff\xfe not utf8 {\n")
        b = store.upsert(item("k2"), actor="gen").item
        fresh = open_store(directory)
        assert fresh.get(a["id"]) == a and fresh.get(b["id"]) == b
        assert fresh.skipped_lines == 2
        # compaction drops the garbage
        fresh.cleanup(180)
        assert open_store(directory).skipped_lines == 0
        assert len(lines(directory / "items.jsonl")) == 2

    def test_event_without_its_item_line_is_invisible_and_cut(self, directory: Path) -> None:
        store = open_store(directory)
        a = store.upsert(item("k1"), actor="gen").item
        # a crash between the event line and the item line of a status change
        orphan = {"id": "ev_orphan", "item_id": a["id"], "ts": "2026-11-26T12:00:00.000000Z",
                  "type": "status_changed", "actor": "t", "message": "", "meta": {}, "item_rev": 2}
        with (directory / "events.jsonl").open("ab") as fh:
            fh.write(orjson.dumps(orphan) + b"\n")
        reader = open_store(directory)
        assert [e["type"] for e in reader.events(a["id"])] == ["created"]
        reader.set_status(a["id"], Status.DONE, actor="t")
        assert [e["type"] for e in open_store(directory).events(a["id"])] == ["created", "status_changed"]
        assert b"ev_orphan" not in (directory / "events.jsonl").read_bytes()


def _writer(directory: str, worker: int, count: int) -> None:
    store = JsonlBacklogStore(directory, clock=FixedClock(NOW))
    for i in range(count):
        store.upsert(item(f"w{worker}-{i}", service=f"svc{worker}", description="x" * (i % 7) * 300), actor="gen")


class TestConcurrency:
    def test_four_processes_250_upserts_each(self, directory: Path) -> None:
        open_store(directory)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_writer, args=(str(directory), w, 250)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        raw = lines(directory / "items.jsonl")
        assert len(raw) == 1000 and all(isinstance(orjson.loads(line), dict) for line in raw)
        assert len(lines(directory / "events.jsonl")) == 1000
        fresh = open_store(directory)
        keys = {r["dedupe_key"] for r in iter_all(fresh)}
        assert keys == {f"w{w}-{i}" for w in range(4) for i in range(250)}

    def test_reader_sees_appends_and_compaction_without_restarting(self, directory: Path,
                                                                   clock: FixedClock) -> None:
        reader = open_store(directory)
        writer = JsonlBacklogStore(directory, clock=clock)
        a = writer.upsert(item("k1"), actor="gen").item
        assert reader.get(a["id"]) == a
        offset_before = reader.items_log.offset
        b = writer.upsert(item("k2"), actor="gen").item
        assert reader.get(b["id"]) == b
        assert reader.items_log.offset > offset_before  # read incrementally
        writer.set_status(a["id"], Status.DONE, actor="t")
        clock.advance(days=200)
        inode = os.stat(directory / "items.jsonl").st_ino
        assert writer.cleanup(180) == 1
        assert os.stat(directory / "items.jsonl").st_ino != inode
        assert reader.get(a["id"]) is None
        assert reader.get(b["id"]) == b
        c = reader.upsert(item("k3"), actor="gen").item  # a write after the other's compaction lands
        assert writer.get(c["id"]) == c
        assert {r["dedupe_key"] for r in iter_all(open_store(directory))} == {"k2", "k3"}


class TestCompaction:
    def test_cleanup_compacts_superseded_versions_and_leaves_no_temp(self, directory: Path) -> None:
        store = open_store(directory)
        a = store.upsert(item("k1"), actor="gen").item
        for status in (Status.IN_PROGRESS, Status.BLOCKED, Status.OPEN):
            store.set_status(a["id"], status, actor="t")
        assert len(lines(directory / "items.jsonl")) == 4
        assert store.cleanup(180) == 0
        assert len(lines(directory / "items.jsonl")) == 1
        assert len(lines(directory / "events.jsonl")) == 4
        assert not [p for p in directory.iterdir() if ".tmp-" in p.name]
        assert open_store(directory).get(a["id"]) == store.get(a["id"])

    def test_leftover_temp_file_is_removed_on_open(self, directory: Path) -> None:
        open_store(directory)
        (directory / "items.jsonl.tmp-999").write_bytes(b"partial")
        open_store(directory)
        assert not (directory / "items.jsonl.tmp-999").exists()


def iter_all(store: JsonlBacklogStore) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    while True:
        page = store.list(ItemQuery(limit=500, cursor=cursor))
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


class TestEventsFileBehind:
    def test_events_lost_from_the_unsynced_file_come_back_from_item_lines(self, directory: Path) -> None:
        """Item changes fsync only items.jsonl; a power cut may lose event lines written before it."""
        store = open_store(directory)
        a = store.upsert(item("k1"), actor="gen").item
        store.set_status(a["id"], Status.IN_PROGRESS, actor="bob")
        store.add_comment(a["id"], "synced on its own", actor="bob")
        events_file = directory / "events.jsonl"
        kept = [line for line in lines(events_file) if b'"commented"' in line]
        events_file.write_bytes(b"".join(line + b"\n" for line in kept))  # the two change events are gone
        fresh = open_store(directory)
        assert [(e["type"], e["actor"]) for e in fresh.events(a["id"])] == [
            ("created", "gen"), ("status_changed", "bob"), ("commented", "bob")]
        # and a compaction makes the events file whole again
        fresh.cleanup(180)
        assert len(lines(events_file)) == 3


def test_open_and_write_leave_the_garbage_collector_on(directory: Path) -> None:
    """The load pauses the cyclic collector (acyclic records); the process must get it back."""
    store = open_store(directory)
    store.upsert(item(title="first"), actor="test")
    store.close()
    reopened = open_store(directory)
    assert [r["title"] for r in reopened.list(ItemQuery()).items] == ["first"]
    assert gc.isenabled()
    reopened.close()


def test_dashboard_is_right_whether_the_pending_changes_were_folded_in_or_not(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Aggregates are folded in lazily; superseded versions past the cap force it. Either way a
    reader's dashboard equals the one a fresh open draws."""
    from services.router.stores import index as index_module

    monkeypatch.setattr(index_module, "MAX_PENDING", 3)
    writer = open_store(directory)
    ids = [writer.upsert(item(f"k{i}", title=f"t{i}", service=f"svc{i % 3}"), actor="test").item["id"]
           for i in range(8)]
    reader = open_store(directory)
    reader.get(ids[0])  # eight new items: nothing superseded, so nothing folded in yet
    assert len(reader.index._pending) == 8
    for item_id in ids[:5]:  # five superseded versions: past the cap, folded in on the reader's refresh
        writer.set_status(item_id, Status.IN_PROGRESS, actor="test")
    reader.get(ids[0])
    assert len(reader.index._pending) < 5
    fresh = open_store(directory)
    assert reader.dashboard("prod") == fresh.dashboard("prod") == writer.dashboard("prod")
    for s in (writer, reader, fresh):
        s.close()


@pytest.fixture
def frozen_restored() -> Iterator[None]:
    """Objects this test freezes go back into the collector's reach afterwards."""
    yield
    gc.unfreeze()


def test_a_bulk_load_is_kept_out_of_the_collector_and_a_small_one_is_not(
        directory: Path, monkeypatch: pytest.MonkeyPatch, frozen_restored: None) -> None:
    """A load of many records (items, then events) freezes them out of the cyclic collector's
    walks; a small refresh freezes nothing, so its garbage cycles are still collected."""
    from services.router.stores import gc_pause

    writer = open_store(directory)
    ids = [writer.upsert(item(f"k{i}", title=f"t{i}"), actor="test").item["id"] for i in range(6)]
    gc.unfreeze()
    monkeypatch.setattr(gc_pause, "BULK_LOAD_RECORDS", 5)
    reader = open_store(directory)
    reader.get(ids[0])  # six items: a bulk load at this threshold
    frozen = gc.get_freeze_count()
    assert frozen > 0 and gc.get_count()[0] < 50  # nothing left young for the next collection to walk
    gc.unfreeze()
    writer.upsert(item("k-new", title="one more"), actor="test")
    reader.get(ids[0])  # one new line: not a bulk load
    assert gc.get_freeze_count() == 0
    assert len(reader.events(ids[0])) == 1  # six events: a bulk load of events
    assert gc.get_freeze_count() > 0
    assert [r["title"] for r in reader.list(ItemQuery()).items][-1] == "one more"
    for s in (writer, reader):
        s.close()
