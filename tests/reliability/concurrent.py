"""Concurrent writers plus a compacting cleaner, all separate processes on one JSONL store."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from services.router.domain.models import ItemInput
from services.router.stores.jsonl import JsonlBacklogStore

SIZES = (200, 4_000, 4_200, 9_000, 30_000, 60_000)  # crossing 4 KiB and 64 KiB lines


@dataclass
class ConcurrencyFigures:
    acknowledged: int = 0
    torn_or_interleaved_lines: int = 0
    lost: int = 0
    writes_to_replaced_file: int = 0
    cleanups: int = 0
    notes: list[str] = field(default_factory=list)

    def misses(self) -> dict[str, int]:
        return {k: v for k, v in (("torn_or_interleaved_lines", self.torn_or_interleaved_lines),
                                  ("lost", self.lost), ("writes_to_replaced_file", self.writes_to_replaced_file))
                if v}


def writer(directory: str, ackfile: str, worker: int, count: int, seed: int) -> None:
    rng = random.Random(seed + worker)
    store = JsonlBacklogStore(directory)
    with open(ackfile, "a", buffering=1) as acks:
        for i in range(count):
            key = f"shared{rng.randrange(20)}" if rng.random() < 0.2 else f"w{worker}-{i}"
            size = rng.choice(SIZES)
            item = ItemInput(env="prod", service=f"svc{worker}", category="c", title=f"{key} w{worker} n{i}",
                             description="d" * min(size, 9_000), dedupe_key=key,
                             meta={"pad": "m" * max(size - 9_000, 0)})
            result = store.upsert(item, actor=f"w{worker}")
            if result.event is not None:
                acks.write(f"{result.event['id']} {key}\n")
    os._exit(0)


def cleaner(directory: str, stop: str, period: float) -> None:
    store = JsonlBacklogStore(directory)
    runs = 0
    while not os.path.exists(stop):
        time.sleep(period)
        store.cleanup(180)
        runs += 1
    Path(stop + ".runs").write_text(str(runs))
    os._exit(0)


def run(workdir: Path, *, writers: int, per_writer: int, cleanup_period: float, seed: int) -> ConcurrencyFigures:
    directory = workdir / "store"
    JsonlBacklogStore(directory)
    ctx = multiprocessing.get_context("fork")
    stop = str(workdir / "stop")
    acks = [workdir / f"acks{w}" for w in range(writers)]
    clean = ctx.Process(target=cleaner, args=(str(directory), stop, cleanup_period))
    clean.start()
    procs = [ctx.Process(target=writer, args=(str(directory), str(acks[w]), w, per_writer, seed))
             for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    Path(stop).write_text("")
    clean.join(60)
    figures = ConcurrencyFigures()
    figures.cleanups = int(Path(stop + ".runs").read_text()) if Path(stop + ".runs").exists() else 0
    # every line of both files is a whole JSON object
    for name in ("items.jsonl", "events.jsonl"):
        for line in (directory / name).read_bytes().split(b"\n")[:-1]:
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                figures.torn_or_interleaved_lines += 1
    store = JsonlBacklogStore(directory)
    acked: list[tuple[str, str]] = []
    for path in acks:
        acked += [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]
    figures.acknowledged = len(acked)
    events_by_item: dict[str, set[str]] = {}
    for event_id, key in acked:
        rec = store.get_by_dedupe_key(key)
        if rec is None:
            figures.lost += 1
            continue
        if rec["id"] not in events_by_item:
            events_by_item[rec["id"]] = {e["id"] for e in store.events(rec["id"])}
        if event_id not in events_by_item[rec["id"]]:
            figures.writes_to_replaced_file += 1
            figures.notes.append(f"event {event_id} of {key} missing")
    return figures
