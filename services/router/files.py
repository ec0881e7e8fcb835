"""File plumbing every file-backed part of Backlog Bridge shares — written once, called everywhere.

Three mechanisms, each with one implementation:

- **Locks** (``FileLock``, ``locked``): an exclusive ``flock`` on a lock file, held across threads
  and processes. Why our own and not the ``filelock`` package: filelock acquires by polling
  (non-blocking attempts and a sleep), opens the lock file with ``O_TRUNC`` (the scheduler keeps
  its pid in its lock file) and re-opens it on every acquisition; the JSONL writers block in the
  kernel on a descriptor they keep, which the reliability suite's concurrent writers and the
  benchmarks depend on. A ``FileLock`` is a re-entrant mutex (threads of one process) around
  ``flock`` on one kept descriptor (processes); ``locked(path)`` opens, locks and closes per use,
  and still excludes other threads because each use is its own open file description.
- **Whole-file replacement** (``write_atomic``, and ``write_durably`` + ``replace_durably`` for a
  replacement in two steps, like the JSONL compaction's two files): temp file in the same folder,
  fsync, rename, fsync the folder — a reader or a restart sees the old file or the new one, never
  half of either, and a completed replace survives power loss. Temp names start with a dot and
  carry ``.tmp-<pid>`` (``TEMP_MARK``), so globs skip them and a cleanup finds leftovers.
- **Re-reading only what changed** (``ChangedFileCache``): a parse per version of a file, one
  ``stat`` per read otherwise, including git's "racy clean" rule: a file modified within the last
  ``RACY_NS`` is re-read and compared by content, because a rewrite within the same timestamp
  tick can leave inode, size and times unchanged.

Crash points (``checkpoint``) are how the reliability suite kills a writer at a named stage;
``crash_hook`` is ``None`` in production.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from services.router.errors import StoreUnavailable

T = TypeVar("T")

# -- crash points (test only) ---------------------------------------------------------------------
CrashHook = Callable[[str], None]
crash_hook: CrashHook | None = None


def checkpoint(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


# -- locks ----------------------------------------------------------------------------------------
class FileLock:
    """An exclusive lock on ``path`` across threads and processes; re-entrant in the holding thread.

    The descriptor is opened on first use and kept until ``close()``, so a lock taken on every
    write costs two ``flock`` calls and no ``open``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def _descriptor(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Block until this thread holds the lock; nested holds by the same thread are free."""
        with self._mutex:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def try_acquire(self, owner: str) -> bool:
        """Take the lock without waiting and keep it until ``close()``; write ``owner`` into the file.

        For a process that must be the only one of its kind on a host (the JSONL scheduler):
        False when another process holds it (``holder()`` then says who)."""
        with self._mutex:
            fd = self._descriptor()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._depth += 1
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode(), 0)
            return True

    def holder(self) -> str:
        """What the holder wrote with ``try_acquire`` ("?" when nothing)."""
        try:
            return self.path.read_bytes()[:64].decode(errors="replace").strip() or "?"
        except OSError:
            return "?"

    def close(self) -> None:
        """Release the descriptor (and with it the lock, if held)."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._depth = 0


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for one block: opened, locked and closed per use."""
    lock = FileLock(path)
    try:
        with lock.hold():
            yield
    finally:
        lock.close()


# -- whole-file replacement -----------------------------------------------------------------------
TEMP_MARK = ".tmp-"


def temp_path(path: Path) -> Path:
    """Where a replacement of ``path`` is prepared: same folder, hidden, marked with our pid."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def remove_temp_files(folder: Path, on_removed: Callable[[Path], None] | None = None) -> None:
    """Delete replacements an interrupted writer left in ``folder`` (their targets are intact)."""
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        if TEMP_MARK in entry.name:
            if on_removed is not None:
                on_removed(entry)
            entry.unlink(missing_ok=True)


def write_all(fd: int, data: bytes, stage: str | None = None) -> None:
    """``write`` until every byte is out (a crash test may split it in two: ``<stage>:mid_line``)."""
    view = memoryview(data)
    half = len(data) // 2
    if crash_hook is not None and stage is not None and half:
        written = os.write(fd, view[:half])
        view = view[written:]
        checkpoint(f"{stage}:mid_line")
    while view:
        view = view[os.write(fd, view):]


def write_durably(path: Path, data: bytes, stage: str | None = None) -> None:
    """Write ``path`` whole and fsync it: the first half of a replacement (raises ``OSError``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data, stage)
        if stage is not None:
            checkpoint(f"{stage}:temp_written")
        os.fsync(fd)
    finally:
        os.close(fd)
    if stage is not None:
        checkpoint(f"{stage}:temp_fsynced")


def replace_durably(temp: Path, path: Path) -> None:
    """Rename ``temp`` over ``path`` and fsync the folder, so the rename survives power loss."""
    os.replace(temp, path)
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, stage: str | None = None) -> None:
    """Replace ``path`` with ``data``; a failure is ``StoreUnavailable`` and leaves no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(path)
    try:
        write_durably(temp, data, stage)
        replace_durably(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StoreUnavailable(f"cannot write {path}: {exc.strerror or exc}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` at ``size`` and make the cut durable."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


# -- re-reading only what changed -----------------------------------------------------------------
RACY_NS = 2_000_000_000  # file timestamps tick coarsely: a rewrite this soon may keep the same stamp
Stamp = tuple[int, int, int, int]  # inode, mtime, ctime, size


@dataclass(frozen=True, slots=True)
class _Parsed(Generic[T]):
    stamp: Stamp
    content_hash: int
    settled: bool  # the file was older than RACY_NS when read: its stamp alone identifies it
    value: T


class ChangedFileCache(Generic[T]):
    """``parse(path, data)`` per path, kept until the file changes; a hit costs one ``stat``.

    Values are shared between callers: treat them as read-only. ``stat``/read errors
    (``FileNotFoundError`` included) and whatever ``parse`` raises propagate; nothing is cached then.
    """

    def __init__(self, parse: Callable[[Path, bytes], T]) -> None:
        self._parse = parse
        self._lock = threading.Lock()
        self._cached: dict[Path, _Parsed[T]] = {}

    def get(self, path: Path) -> T:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        with self._lock:
            hit = self._cached.get(path)
        if hit is not None and hit.settled and hit.stamp == stamp:
            return hit.value
        settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS  # judged before reading
        data = path.read_bytes()
        content_hash = hash(data)
        if hit is not None and hit.stamp == stamp and hit.content_hash == content_hash:
            value = hit.value
        else:
            value = self._parse(path, data)
        with self._lock:
            self._cached[path] = _Parsed(stamp, content_hash, settled, value)
        return value
