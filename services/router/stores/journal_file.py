"""A journal of writes accepted on a fallback, as a file: what every such journal needs.

Why separate from what is journaled: the backlog's ``fallback_journal`` and the signals layer's
``outage_journal`` record different requests and replay them differently, but must make them
durable the same way — one JSON object a line, fsynced before the caller acknowledges anything;
a torn last line (a crash mid-append) skipped, since its write was never acknowledged; writers
and the replayer of one folder (threads or processes) serialized by a ``files.FileLock``; the
file emptied in place after a complete replay, so other processes keep appending to the same
inode. Kept free of driver imports: the signals layer loads it in every process.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.router.errors import StoreUnavailable
from services.router.files import FileLock, checkpoint

log = logging.getLogger("backlog_store")


class JournalFile:
    """``<name>.jsonl``, ``<name>.failed.jsonl`` and ``.<name>.lock`` in ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.path = directory / f"{name}.jsonl"
        self.failed_path = directory / f"{name}.failed.jsonl"
        self._lock = FileLock(directory / f".{name}.lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock.hold():
            yield

    def append(self, record: dict[str, Any], *, sync: bool = True, path: Path | None = None) -> None:
        """One line; ``sync`` makes it durable before the caller acknowledges anything.

        After a torn last line the record starts a new line: glued to the fragment, an
        acknowledged record would be unreadable too. Callers hold ``locked()``.
        """
        target = path or self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.fstat(fd).st_size
            torn = end > 0 and os.pread(fd, 1, end - 1) != b"\n"
            os.write(fd, (b"\n" if torn else b"") + orjson.dumps(record) + b"\n")
            if sync:
                os.fsync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"{target.name} write failed: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def has_pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def records(self) -> list[dict[str, Any]]:
        """Every line that is an object with an ``op_id`` and a ``kind``, in order.

        A torn last line (a crash mid-append) is skipped: its write was never acknowledged.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or "op_id" not in record or "kind" not in record:
                log.warning("%s: skipping unreadable line %d", self.path.name, number)
                continue
            out.append(record)
        return out

    def clear(self) -> None:
        """Empty the journal in place (same inode: other processes keep appending to it)."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._lock.close()


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled request, ready to re-apply: ``apply`` returns the outcome it is counted as."""

    name: str  # ``op 1f3a… (upsert)``: how the logs name it
    record: dict[str, Any]  # what the failed file keeps for an operator
    apply: Callable[[], str]


def replay(journal: JournalFile, entries: Sequence[Entry], *, what: str, stage: str,
           logger: logging.Logger = log) -> Counter[str]:
    """Apply ``entries`` in order, then empty the journal; the outcomes, counted.

    ``StoreUnavailable`` (Postgres gone again mid-way) propagates and keeps the journal, so the
    next attempt starts over (each journal's apply is idempotent). Any other error is a refusal
    for good: the entry goes to the failed file for an operator and the replay goes on, rather
    than keeping the store degraded forever. ``stage`` names the crash-test checkpoint after each
    entry; ``logger`` is the journaling layer's. Caller holds ``journal.locked()``.
    """
    outcomes: Counter[str] = Counter()
    if entries:
        logger.info("replaying %d %s accepted on the JSONL fallback", len(entries), what)
    for entry in entries:
        try:
            outcome = entry.apply()
        except StoreUnavailable:
            raise
        except Exception as exc:  # refused for good: keep it for an operator, do not block
            outcome = "failed"
            logger.error("%s: %s could not be applied: %s: %s; kept in %s", journal.path.name, entry.name,
                         type(exc).__name__, exc, journal.failed_path.name)
            journal.append({**entry.record, "error": f"{type(exc).__name__}: {exc}"}, path=journal.failed_path)
        outcomes[outcome] += 1
        checkpoint(stage)
    journal.clear()
    if entries:
        logger.info("replay of %s done: %s", what, ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return outcomes
