"""Crash harness shared by the CI tier (pytest) and ``make reliability`` (full counts).

Every function returns figures — counts whose goal is 0 — so the same code both asserts in
tests and prints the table. Children are forked (cheap on 2 cores) and killed with SIGKILL,
either by the parent at random times or by themselves at named crash points.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.router.domain.queries import ItemQuery
from services.router.stores.jsonl import JsonlBacklogStore
from tests.reliability import child_writer

CRASH_POINTS = (
    "events:mid_line", "events:before_fsync", "events:after_fsync", "between_files",
    "items:mid_line", "items:before_fsync", "items:after_fsync",
    "cleanup_items:temp_written", "cleanup_items:temp_fsynced", "cleanup_items:after_rename",
    "cleanup_events:temp_written", "cleanup_events:after_rename",
)


@dataclass
class Figures:
    acknowledged: int = 0
    lost: int = 0
    reopen_failures: int = 0
    never_written: int = 0
    events_missing: int = 0
    temp_files_left: int = 0
    unreadable_lines: int = 0
    kills: int = 0
    notes: list[str] = field(default_factory=list)

    def misses(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k not in ("acknowledged", "kills", "notes") and v}


def read_acks(ackfile: Path) -> dict[str, tuple[int, str]]:
    """Latest acknowledged (seq, event id) per key; a torn last ack line is ignored."""
    latest: dict[str, tuple[int, str]] = {}
    if not ackfile.exists():
        return latest
    for line in ackfile.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        key, seq, event_id = parts[0], int(parts[1]), parts[2]
        if key not in latest or seq > latest[key][0]:
            latest[key] = (seq, event_id)
    return latest


def all_ack_events(ackfile: Path) -> list[tuple[str, str]]:
    out = []
    for line in ackfile.read_text().splitlines() if ackfile.exists() else []:
        parts = line.split()
        if len(parts) == 3 and parts[2] != "-":
            out.append((parts[0], parts[2]))
    return out


def verify(directory: Path, ackfile: Path, attempted_below: int, figures: Figures) -> None:
    """Reopen the store as a fresh process would and compare with what was acknowledged."""
    try:
        store = JsonlBacklogStore(directory)
        records = list_all(store)
    except Exception as exc:  # a reopen failure is a figure, not a crash of the harness
        figures.reopen_failures += 1
        figures.notes.append(f"reopen failed: {exc!r}")
        return
    by_key = {r["dedupe_key"]: r for r in records}
    acks = read_acks(ackfile)
    figures.acknowledged = len(all_ack_events(ackfile))
    for key, (seq, _) in acks.items():
        rec = by_key.get(key)
        if rec is None or rec["meta"]["seq"] < seq:
            figures.lost += 1
            figures.notes.append(f"lost {key} v{seq}")
    for rec in records:
        seq = rec["meta"].get("seq", -1)
        if seq >= attempted_below or rec["title"] != f"{rec['dedupe_key']} v{seq}":
            figures.never_written += 1
            figures.notes.append(f"never written: {rec['dedupe_key']} {rec['title'][:40]}")
    event_ids: dict[str, set[str]] = {}
    for key, event_id in all_ack_events(ackfile):
        rec = by_key.get(key)
        if rec is None:
            continue
        if rec["id"] not in event_ids:
            event_ids[rec["id"]] = {e["id"] for e in store.events(rec["id"])}
        if event_id not in event_ids[rec["id"]]:
            figures.events_missing += 1
    figures.temp_files_left += sum(1 for p in directory.iterdir() if ".tmp-" in p.name)
    figures.unreadable_lines += store.skipped_lines


def list_all(store: JsonlBacklogStore) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    while True:
        page = store.list(ItemQuery(limit=500, cursor=cursor))
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _child(args: list[str]) -> None:
    child_writer.main(args)
    os._exit(0)


def spawn(args: list[str]) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(args,))
    proc.start()
    return proc


def ack_count(ackfile: Path) -> int:
    try:
        return ackfile.stat().st_size // 40  # cheap progress signal; ack lines are ~40 bytes
    except FileNotFoundError:
        return 0


def max_acked_seq(ackfile: Path) -> int:
    acks = read_acks(ackfile)
    return max((seq for seq, _ in acks.values()), default=-1)


def kill9_run(workdir: Path, *, items: int, kills: int, seed: int) -> Figures:
    """Write ``items`` upserts while the parent SIGKILLs the writer ``kills`` times at random moments."""
    rng = random.Random(seed)
    directory, ackfile = workdir / "store", workdir / "acks"
    figures = Figures()
    next_seq = 0
    while next_seq < items:
        proc = spawn([str(directory), str(ackfile), str(rng.randrange(1 << 30)), str(next_seq),
                      str(items - next_seq)])
        if figures.kills < kills:
            # let it acknowledge a random number of writes, then kill it at a random instant
            target = ack_count(ackfile) + rng.randint(1, max(items // max(kills, 1), 2))
            deadline = time.monotonic() + 30
            while proc.is_alive() and ack_count(ackfile) < target and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.003))
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGKILL)
                figures.kills += 1
        proc.join(120)
        # resume after everything this run may have attempted
        next_seq = max(max_acked_seq(ackfile) + 2, next_seq + 1)
        verify(directory, ackfile, attempted_below=next_seq, figures=figures)
    return figures


def crash_point_run(workdir: Path, *, point: str, repeats: int, seed: int) -> Figures:
    """Let a writer kill itself at ``point`` (the n-th time it is reached), ``repeats`` times."""
    rng = random.Random(seed)
    directory, ackfile = workdir / "store", workdir / "acks"
    figures = Figures()
    next_seq = 0
    cleanup_flag = ["cleanup"] if point.startswith("cleanup") else []
    for _ in range(repeats):
        nth = rng.randint(1, 2) if point.startswith("cleanup") else rng.randint(1, 40)
        proc = spawn([str(directory), str(ackfile), str(rng.randrange(1 << 30)), str(next_seq), "120",
                      point, str(nth), *cleanup_flag])
        proc.join(120)
        if proc.exitcode == -signal.SIGKILL:
            figures.kills += 1
        next_seq = max(max_acked_seq(ackfile) + 2, next_seq + 120)
        verify(directory, ackfile, attempted_below=next_seq, figures=figures)
    return figures
