"""Torn and damaged JSONL files: the reader never raises or hangs and returns exactly the intact records."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.stores.jsonl import JsonlBacklogStore
from tests.conftest import NOW
from tests.factories import item
from tests.reliability.harness import list_all


def build(directory: Path) -> JsonlBacklogStore:
    store = JsonlBacklogStore(directory, clock=FixedClock(NOW))
    ids = [store.upsert(item(f"k{i}", title=f"title {i}"), actor="gen").item["id"] for i in range(8)]
    store.set_status(ids[2], Status.IN_PROGRESS, actor="t")
    store.upsert(item("k5", title="title 5 again"), actor="gen")
    store.set_status(ids[7], Status.BLOCKED, actor="t")
    return store


def intact_items(data: bytes) -> dict[str, dict[str, Any]]:
    """Independent expectation: newline-terminated JSON lines, last write wins per id."""
    out: dict[str, dict[str, Any]] = {}
    for line in data.split(b"\n")[:-1]:
        try:
            rec = orjson.loads(line.strip(b"\x00"))
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "dedupe_key" in rec:
            rec.pop("_ev", None)  # the embedded copy of the change's event is not part of the item
            out[rec["id"]] = rec
    return out


def check_reader(directory: Path, expected: dict[str, dict[str, Any]]) -> JsonlBacklogStore:
    reader = JsonlBacklogStore(directory, clock=FixedClock(NOW))
    got = {r["id"]: r for r in list_all(reader)}
    assert got == expected
    # and the next append is readable by a fresh reader
    new = reader.upsert(item("after", title="after the damage"), actor="gen").item
    fresh = JsonlBacklogStore(directory, clock=FixedClock(NOW))
    assert fresh.get(new["id"]) == new
    assert {r["id"] for r in list_all(fresh)} == {*expected, new["id"]}
    return reader


@pytest.mark.parametrize("name", ["items.jsonl", "events.jsonl"])
def test_truncation_at_every_byte_of_the_last_three_lines(tmp_path: Path, name: str) -> None:
    source = tmp_path / "source"
    build(source)
    data = (source / name).read_bytes()
    lines = data.split(b"\n")[:-1]
    start = len(data) - sum(len(line) + 1 for line in lines[-3:])
    for cut in range(start, len(data)):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(source, work)
        with (work / name).open("r+b") as fh:
            fh.truncate(cut)
        items_data = (work / "items.jsonl").read_bytes()
        reader = JsonlBacklogStore(work, clock=FixedClock(NOW))
        expected = intact_items(items_data)
        assert {r["id"]: r for r in list_all(reader)} == expected, cut
        for rec in expected.values():  # events shown are exactly those whose change landed
            for event in reader.events(rec["id"]):
                assert event["item_rev"] <= rec["rev"]
        shutil.rmtree(work)


@pytest.mark.parametrize(
    ("damage", "skipped"),
    [
        ("nul_run_tail", 0),          # NULs after the last line: a torn tail, cut on next write
        ("nul_run_middle", 1),        # NULs before a record that landed after them
        ("invalid_utf8", 1),
        ("duplicated_line", 0),
        ("huge_line", 1),
        ("json_but_not_an_item", 2),
    ],
)
def test_damaged_lines(tmp_path: Path, damage: str, skipped: int, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "store"
    build(directory)
    path = directory / "items.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    if damage == "nul_run_tail":
        lines[-1] = lines[-1] + b"\n" + b"\x00" * 4096
        data = b"\n".join(lines)
    else:
        if damage == "nul_run_middle":
            lines[3] = b"\x00" * 4096 + lines[3]
        elif damage == "invalid_utf8":
            lines.insert(4, b'{"id": "bl_\xff\xfe"}')
        elif damage == "duplicated_line":
            lines.insert(4, lines[3])
        elif damage == "huge_line":
            lines.insert(4, b'{"junk": "' + b"x" * (10 * 1024 * 1024))
        elif damage == "json_but_not_an_item":
            lines.insert(4, b'[1, 2, 3]')
            lines.insert(5, b'{"id": 42, "title": "no shape"}')
        data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    expected = intact_items(data)
    with caplog.at_level(logging.WARNING, logger="backlog_store"):
        reader = check_reader(directory, expected)
    assert reader.skipped_lines == skipped
    if skipped:
        assert "skipping unreadable line" in caplog.text
