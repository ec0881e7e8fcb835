"""One append-only JSONL file, read incrementally and repaired under the writer lock.

A reader remembers the inode and the byte offset it has parsed up to; each refresh parses only
what was appended since. A different inode or a shorter file means another process compacted
it, and the caller reloads from scratch. Bytes after the last newline are either a write in
flight (readers leave them) or a torn line from a crash (the writer, holding the lock, cuts
them off before appending, so the next acknowledged write never joins garbage).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("backlog_store")

# Test-only crash points (issue: reliability suite); ``None`` in production.
CrashHook = Callable[[str], None]
crash_hook: CrashHook | None = None


def checkpoint(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


@dataclass(slots=True)
class ParsedLine:
    offset: int
    record: dict[str, Any]


class JsonlLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0
        self.last_line_offset: int | None = None

    def reset(self) -> None:
        self.inode = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0
        self.last_line_offset = None

    def replaced(self) -> bool:
        """True when the file on disk is not the one we have parsed (compacted or removed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.inode is not None
        if self.inode is None:
            return False
        return st.st_ino != self.inode or st.st_size < self.offset

    def read_new(self, accept: Callable[[dict[str, Any]], bool] | None = None) -> list[ParsedLine]:
        """Parse complete lines appended since the last call.

        Lines that are not JSON objects, or that ``accept`` rejects (wrong shape), are skipped,
        counted and logged — a damaged file degrades to fewer records, never to an exception.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            st = os.fstat(fd)
            if self.inode is None:
                self.inode = st.st_ino
            if st.st_size <= self.offset:
                return []
            os.lseek(fd, self.offset, os.SEEK_SET)
            data = _read_exactly(fd, st.st_size - self.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        parsed: list[ParsedLine] = []
        base = self.offset
        pos = 0
        for raw in data[: end + 1].split(b"\n")[:-1]:
            start = base + pos
            pos += len(raw) + 1
            damaged = b"\x00" in raw
            if damaged:
                # A run of NULs (blocks allocated but never written before a power cut) may precede
                # a complete record appended after it: count and log the NULs, keep the record.
                stripped = raw.strip(b"\x00")
                self.skipped += 1
                log.warning("skipping unreadable line fragment: %d NUL bytes at byte %d of %s",
                            len(raw) - len(stripped), start, self.path)
                raw = stripped
            record = _parse(raw)
            if record is not None and accept is not None and not accept(record):
                record = None
            if record is None:
                if not raw or damaged:  # blank, or already counted as a NUL fragment
                    continue
                self.skipped += 1
                log.warning("skipping unreadable line at byte %d of %s (%d bytes)", start, self.path, len(raw))
                continue
            self.lines += 1
            self.last_line_offset = start
            parsed.append(ParsedLine(start, record))
        self.offset = base + end + 1
        return parsed

    def cut_torn_tail(self) -> None:
        """Under the writer lock: drop bytes after the last complete line (a crashed write)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size > self.offset:
            log.warning(
                "skipping torn line: cutting %d bytes after offset %d of %s", size - self.offset,
                self.offset, self.path,
            )
            truncate(self.path, self.offset)

    def drop_last_line(self) -> None:
        """Under the writer lock: remove the last parsed line (an orphaned event)."""
        if self.last_line_offset is None:
            return
        truncate(self.path, self.last_line_offset)
        self.offset = self.last_line_offset
        self.lines -= 1
        self.last_line_offset = None

    def append(self, records: list[dict[str, Any]], stage: str, *, sync: bool = True) -> None:
        """Append records (and fsync once when ``sync``); on failure, restore the old end and re-raise.

        Must be called with the writer lock held and after ``read_new`` brought ``offset`` to
        the end of the file, so ``offset`` is exactly where these bytes land.
        """
        lines = [orjson.dumps(r) + b"\n" for r in records]
        data = b"".join(lines)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            st = os.fstat(fd)
            start = st.st_size
            try:
                _write_all(fd, data, stage)
                checkpoint(f"{stage}:before_fsync")
                if sync:
                    os.fsync(fd)
            except BaseException:
                _restore(fd, start)
                raise
            if self.inode is None:
                self.inode = st.st_ino
        finally:
            os.close(fd)
        checkpoint(f"{stage}:after_fsync")
        self.offset = start + len(data)
        self.lines += len(records)
        self.last_line_offset = self.offset - len(lines[-1]) if lines else self.last_line_offset


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes, stage: str) -> None:
    view = memoryview(data)
    half = len(data) // 2
    if crash_hook is not None and half:
        # Crash point "mid-line": the write reaches the file in two parts.
        written = os.write(fd, view[:half])
        view = view[written:]
        checkpoint(f"{stage}:mid_line")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _restore(fd: int, size: int) -> None:
    """Best effort: take back a write that was not acknowledged."""
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        log.warning("could not cut back a failed write: %s", exc)


def truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, records: list[dict[str, Any]], stage: str) -> None:
    """Write a whole file and fsync it (the temp half of an atomic replace)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, b"".join(orjson.dumps(r) + b"\n" for r in records), stage)
        checkpoint(f"{stage}:temp_written")
        os.fsync(fd)
    finally:
        os.close(fd)
    checkpoint(f"{stage}:temp_fsynced")
