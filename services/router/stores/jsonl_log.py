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


TAIL_CHUNK = 64 * 1024
ID_PREFIX = b'{"id":"'
ID_START = len(ID_PREFIX)


@dataclass(slots=True)
class ParsedLine:
    offset: int
    record: dict[str, Any]


Accept = Callable[[dict[str, Any]], bool]


class JsonlLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0

    def reset(self) -> None:
        self.inode = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0

    def replaced(self) -> bool:
        """True when the file on disk is not the one we have parsed (compacted or removed)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.inode is not None
        if self.inode is None:
            return False
        return st.st_ino != self.inode or st.st_size < self.offset

    def read_new(self, accept: Accept | None = None, *, latest_by_id: bool = False) -> list[ParsedLine]:
        """Parse complete lines appended since the last call.

        Lines that are not JSON objects, or that ``accept`` rejects (wrong shape), are skipped,
        counted and logged — a damaged file degrades to fewer records, never to an exception.

        With ``latest_by_id``, only the last version of each record is parsed: lines written by
        this store start with ``{"id":"…"``, so superseded versions are recognised by that prefix
        alone and never decoded (a cold open of 5 versions per item parses each item once).
        """
        base, data = self._unread_bytes()
        if not data:
            return []
        lines = self._split(base, data)
        self.offset = base + len(data)
        self.lines += len(lines)
        if latest_by_id:
            return self._parse_latest(lines, accept)
        return [p for p in (self._parse_one(start, raw, accept) for start, raw in lines) if p is not None]

    def _unread_bytes(self) -> tuple[int, bytes]:
        """Bytes from ``offset`` up to and including the last newline (a partial tail stays unread)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self.offset, b""
        try:
            st = os.fstat(fd)
            if self.inode is None:
                self.inode = st.st_ino
            if st.st_size <= self.offset:
                return self.offset, b""
            os.lseek(fd, self.offset, os.SEEK_SET)
            data = _read_exactly(fd, st.st_size - self.offset)
        finally:
            os.close(fd)
        return self.offset, data[: data.rfind(b"\n") + 1]

    def _split(self, base: int, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        pos = base
        for raw in data.split(b"\n")[:-1]:
            out.append((pos, raw))
            pos += len(raw) + 1
        return out

    def _parse_one(self, start: int, raw: bytes, accept: Accept | None) -> ParsedLine | None:
        damaged = b"\x00" in raw
        if damaged:
            # A run of NULs (blocks allocated but never written before a power cut) may precede a
            # complete record appended after it: count and log the NULs, keep the record.
            stripped = raw.strip(b"\x00")
            self.skipped += 1
            log.warning("skipping unreadable line fragment: %d NUL bytes at byte %d of %s",
                        len(raw) - len(stripped), start, self.path)
            raw = stripped
        record = _parse(raw)
        if record is not None and accept is not None and not accept(record):
            record = None
        if record is None:
            self.lines -= 1
            if raw and not damaged:  # blank lines and NUL fragments are already accounted for
                self.skipped += 1
                log.warning("skipping unreadable line at byte %d of %s (%d bytes)", start, self.path, len(raw))
            return None
        return ParsedLine(start, record)

    def _parse_latest(self, lines: list[tuple[int, bytes]], accept: Accept | None) -> list[ParsedLine]:
        versions: dict[bytes, list[int]] = {}
        other: list[int] = []
        for n, (_, raw) in enumerate(lines):
            if raw.startswith(ID_PREFIX):
                end = raw.find(b'"', ID_START)
                if end > 0:
                    versions.setdefault(raw[ID_START:end], []).append(n)
                    continue
            other.append(n)
        picked: list[ParsedLine] = []
        for positions in versions.values():
            for n in reversed(positions):  # newest first; fall back if it is damaged
                parsed = self._parse_one(*lines[n], accept)
                if parsed is not None:
                    picked.append(parsed)
                    break
            # superseded versions are valid lines that were simply not decoded
        picked += [p for p in (self._parse_one(*lines[n], accept) for n in other) if p is not None]
        picked.sort(key=lambda p: p.offset)  # file order, so last write wins for odd lines too
        return picked

    def complete_end(self) -> int:
        """Offset just past the last newline in the file (0 if none): where complete lines end."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            pos = os.fstat(fd).st_size
            while pos > 0:
                start = max(0, pos - TAIL_CHUNK)
                os.lseek(fd, start, os.SEEK_SET)
                chunk = _read_exactly(fd, pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    return start + nl + 1
                pos = start
            return 0
        finally:
            os.close(fd)

    def cut_torn_tail(self) -> None:
        """Under the writer lock: drop bytes after the last complete line (a crashed write).

        Found from the file itself, not from how far this reader has parsed, so a reader that
        has not loaded a file (lazy events) can still repair it.
        """
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        end = self.complete_end()
        if size > end:
            log.warning("skipping torn line: cutting %d bytes after offset %d of %s", size - end, end, self.path)
            truncate(self.path, end)
            if self.offset > end:
                self.offset = end

    def last_record(self, accept: Accept | None = None) -> ParsedLine | None:
        """The last complete line, parsed (None if the file is empty or the line is damaged)."""
        end = self.complete_end()
        if end == 0:
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            pos = end - 1  # the final newline
            buf = b""
            while True:
                start = max(0, pos - len(buf) - TAIL_CHUNK)
                os.lseek(fd, start, os.SEEK_SET)
                buf = _read_exactly(fd, pos - start)
                nl = buf.rfind(b"\n")
                if nl >= 0 or start == 0:
                    line_start = start + nl + 1
                    break
        finally:
            os.close(fd)
        record = _parse(buf[nl + 1:] if nl >= 0 else buf)
        if record is None or (accept is not None and not accept(record)):
            return None
        return ParsedLine(line_start, record)

    def drop_from(self, offset: int) -> None:
        """Under the writer lock: cut the file at ``offset`` (an orphaned last event)."""
        truncate(self.path, offset)
        if self.offset > offset:
            self.offset = offset
            self.lines -= 1

    def append(self, records: list[dict[str, Any]], stage: str, *, sync: bool = True, parsed: bool = True) -> None:
        """Append records (and fsync once when ``sync``); on failure, restore the old end and re-raise.

        ``parsed=False`` for a file this reader does not index (yet): its offset stays put.

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
        if parsed and self.offset == start:  # a caught-up reader need not parse what it just wrote
            self.offset = start + len(data)
            self.lines += len(records)


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
