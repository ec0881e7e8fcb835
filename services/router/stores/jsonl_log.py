"""One append-only JSONL file, read incrementally and repaired under the writer lock.

A reader remembers the inode and the byte offset it has parsed up to; each refresh parses only
what was appended since. A different inode or a shorter file means another process compacted
it, and the caller reloads from scratch. Bytes after the last newline are either a write in
flight (readers leave them) or a torn line from a crash (the writer, holding the lock, cuts
them off before appending, so the next acknowledged write never joins garbage).
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.router.files import checkpoint, fsync_dir, truncate, write_all, write_durably
from services.router.stores.jsonl_lines import parse_line, read_exactly, skip_pattern

log = logging.getLogger("backlog_store")

TAIL_CHUNK = 8 * 1024
BATCH_PARSE_BYTES = 4 * 1024 * 1024
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
        self.verified: tuple[int, int] | None = None
        self.inode: int | None = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0
        self._stat: os.stat_result | None = None  # one stat per file per operation
        self._fd: int | None = None  # kept open for appends while it names the current file
        self._fd_ino = -1

    def observe(self) -> None:
        """Stat the file once for the operation that follows (None when it does not exist)."""
        try:
            self._stat = os.stat(self.path)
        except FileNotFoundError:
            self._stat = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reset(self) -> None:
        self.inode = None
        self.offset = 0
        self.lines = 0
        self.skipped = 0

    def replaced(self) -> bool:
        """True when the file on disk is not the one we have parsed (compacted or removed)."""
        st = self._stat
        if st is None:
            return self.inode is not None
        if self.inode is None:
            return False
        return st.st_ino != self.inode or st.st_size < self.offset

    def read_new(self, accept: Accept | None = None, *, latest_by_id: bool = False,
                 skip_last: bytes | None = None) -> list[ParsedLine]:
        """Parse complete lines appended since the last call (see ``_read_new``)."""
        got = self._read_new(accept, latest_by_id=latest_by_id, skip_last=skip_last)
        if isinstance(got, tuple):
            start, records = got
            return [ParsedLine(start, r) for r in records]  # a batch's lines all carry its start
        return got

    def read_new_records(self, accept: Accept | None = None, *, latest_by_id: bool = False,
                         skip_last: bytes | None = None) -> list[dict[str, Any]]:
        """``read_new`` without offsets, for readers that only index the records: the usual
        small refresh hands over orjson's list as it is."""
        got = self._read_new(accept, latest_by_id=latest_by_id, skip_last=skip_last)
        return got[1] if isinstance(got, tuple) else [line.record for line in got]

    def _read_new(self, accept: Accept | None, *, latest_by_id: bool,
                  skip_last: bytes | None) -> list[ParsedLine] | tuple[int, list[dict[str, Any]]]:
        """Parse complete lines appended since the last call: a small tail as one batch
        ``(its start offset, records)``, otherwise the lines with their offsets.

        Lines that are not JSON objects, or that ``accept`` rejects (wrong shape), are skipped,
        counted and logged — a damaged file degrades to fewer records, never to an exception.

        With ``latest_by_id``, only the last version of each record is decoded: lines written by
        this store start with ``{"id":"…"``, so a scan of the memory-mapped file finds each
        line's id and superseded versions are never copied or parsed (a cold open of 5 versions
        per item decodes each item once, and peak memory stays near the records kept).

        ``skip_last`` (e.g. ``b',"_ev":{"id":"'``) names a trailing member the caller does not
        need: it is cut off before decoding, so it costs neither parse time nor memory (see
        ``_parse``; a line where the cut is not at the top level is decoded whole).
        """
        if self._stat is None or (self._stat.st_size <= self.offset and self.inode is not None):
            return []
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
            if st.st_size - self.offset <= BATCH_PARSE_BYTES:
                # The usual refresh: a small tail, read with one pread (mapping a large file
                # costs a page fault per page touched, more than the copy).
                data = os.pread(fd, st.st_size - self.offset, self.offset)
                end = data.rfind(b"\n") + 1
                if end == 0:
                    return []
                batch = self._parse_batch(data[:end] if end < len(data) else data, accept, skip_last)
                if batch is not None:
                    return batch
            with mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ) as mm:
                end = mm.rfind(b"\n", self.offset) + 1
                if end <= self.offset:
                    return []
                starts: dict[bytes, int] = {}
                odd: list[int] = []
                count = 0
                pos, find = self.offset, mm.find
                while pos < end:  # C-speed searches; only ids are copied out of the mapping
                    nl = find(b"\n", pos, end)
                    count += 1
                    if latest_by_id and mm[pos:pos + ID_START] == ID_PREFIX:
                        quote = find(b'"', pos + ID_START, nl)
                        if quote > 0:
                            starts[mm[pos + ID_START:quote]] = pos
                            pos = nl + 1
                            continue
                    odd.append(pos)
                    pos = nl + 1
                self.offset = end
                self.lines += count
                parsed = [p for p in (self._parse_at(mm, at, accept, skip_last) for at in odd) if p is not None]
                for ident, at in starts.items():
                    line = self._parse_at(mm, at, accept, skip_last)
                    if line is None:  # the newest version is damaged: fall back to an older one
                        line = self._older_version(mm, ident, at, accept, skip_last)
                    if line is not None:
                        parsed.append(line)
        finally:
            os.close(fd)
        if starts and odd:
            parsed.sort(key=lambda p: p.offset)  # file order, so last write wins for odd lines too
        return parsed

    def _parse_batch(self, data: bytes, accept: Accept | None,
                     skip_last: bytes | None) -> tuple[int, list[dict[str, Any]]] | None:
        """A small appended region (the usual refresh) decoded in one orjson call as a JSON array.

        Returns None when any line is damaged or not an accepted object; the caller then takes
        the line-by-line path, which skips and reports exactly the bad lines.
        """
        if b"\x00" in data:
            return None
        size = len(data)
        # Each line's skipped member, through its end, becomes "}" — when the first line has
        # one (this store's lines all do; a scan of lines from elsewhere would cost more).
        if skip_last is not None and skip_last in data[:data.find(b"\n")]:
            data = skip_pattern(skip_last).sub(b"}\n", data)
        try:
            records = orjson.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            return None
        if not all(type(r) is dict for r in records) or (accept is not None and not all(map(accept, records))):
            return None
        start = self.offset
        self.offset += size
        self.lines += len(records)
        return start, records

    def _parse_at(self, mm: mmap.mmap, start: int, accept: Accept | None,
                  skip_last: bytes | None = None) -> ParsedLine | None:
        return self._parse_one(start, mm[start:mm.find(b"\n", start)], accept, skip_last)

    def _older_version(self, mm: mmap.mmap, ident: bytes, newest: int, accept: Accept | None,
                       skip_last: bytes | None) -> ParsedLine | None:
        pattern = re.compile(rb'^\{"id":"' + re.escape(ident) + rb'"', re.MULTILINE)
        older = [m.start() for m in pattern.finditer(mm, 0, newest)]
        for at in reversed(older):
            line = self._parse_at(mm, at, None, skip_last)
            if line is not None and (accept is None or accept(line.record)):
                return line
        return None

    def _parse_one(self, start: int, raw: bytes, accept: Accept | None,
                   skip_last: bytes | None = None) -> ParsedLine | None:
        damaged = b"\x00" in raw
        if damaged:
            # A run of NULs (blocks allocated but never written before a power cut) may precede a
            # complete record appended after it: count and log the NULs, keep the record.
            stripped = raw.strip(b"\x00")
            self.skipped += 1
            log.warning("skipping unreadable line fragment: %d NUL bytes at byte %d of %s",
                        len(raw) - len(stripped), start, self.path)
            raw = stripped
        record = parse_line(raw, skip_last)
        if record is not None and accept is not None and not accept(record):
            record = None
        if record is None:
            self.lines -= 1
            if raw and not damaged:  # blank lines and NUL fragments are already accounted for
                self.skipped += 1
                log.warning("skipping unreadable line at byte %d of %s (%d bytes)", start, self.path, len(raw))
            return None
        return ParsedLine(start, record)

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
                chunk = read_exactly(fd, pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    return start + nl + 1
                pos = start
            return 0
        finally:
            os.close(fd)

    def changed_since_verified(self) -> bool:
        """Whether someone else touched the file since it was last known to end cleanly.

        Writers hold the lock, so a file whose inode and size are what our own last append or
        repair left cannot have a torn tail or an orphan: one stat replaces a tail read per write.
        """
        st = self._stat
        return st is not None and (st.st_ino, st.st_size) != self.verified

    def mark_verified(self) -> None:
        """After a repair: remember how the file ends now (and refresh the operation's stat)."""
        self.observe()
        st = self._stat
        self.verified = (st.st_ino, st.st_size) if st is not None else None

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
                buf = read_exactly(fd, pos - start)
                nl = buf.rfind(b"\n")
                if nl >= 0 or start == 0:
                    line_start = start + nl + 1
                    break
        finally:
            os.close(fd)
        record = parse_line(buf[nl + 1:] if nl >= 0 else buf)
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
        fd, ino, start = self._append_fd()
        try:
            write_all(fd, data, stage)
            checkpoint(f"{stage}:before_fsync")
            if sync:
                os.fsync(fd)
        except BaseException:
            _restore(fd, start)
            self.close()
            raise
        if self.inode is None:
            self.inode = ino
        checkpoint(f"{stage}:after_fsync")
        self.verified = (ino, start + len(data))
        self._stat = None
        if parsed and self.offset == start:  # a caught-up reader need not parse what it just wrote
            self.offset = start + len(data)
            self.lines += len(records)


    def _append_fd(self) -> tuple[int, int, int]:
        """(fd, inode, size): the kept descriptor if it still names the file at our path."""
        st = self._stat if self._stat is not None else None
        if self._fd is not None and st is not None and st.st_ino == self._fd_ino:
            return self._fd, st.st_ino, st.st_size
        self.close()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:  # the new file's name must survive power loss, like the bytes fsynced into it
            fsync_dir(self.path.parent)
        fst = os.fstat(fd)
        self._fd, self._fd_ino = fd, fst.st_ino
        return fd, fst.st_ino, fst.st_size


def _restore(fd: int, size: int) -> None:
    """Best effort: take back a write that was not acknowledged."""
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        log.warning("could not cut back a failed write: %s", exc)


def write_file_durably(path: Path, records: list[dict[str, Any]], stage: str) -> None:
    """Write a whole file of records and fsync it (the temp half of an atomic replace)."""
    write_durably(path, b"".join(orjson.dumps(r) + b"\n" for r in records), stage)
