"""``files``: the one lock, the one atomic replacement and the one changed-file cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.router.errors import StoreUnavailable
from services.router.files import RACY_NS, ChangedFileCache, FileLock, locked, write_atomic

TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
"""


def other_process_gets(path: Path) -> bool:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], check=False).returncode == 0


def test_a_held_lock_excludes_other_processes_and_is_reentrant(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / ".x.lock")
    with lock.hold():
        with lock.hold():  # nested in the same thread: no deadlock, and the outer hold survives the inner exit
            pass
        assert not other_process_gets(lock.path)
    assert other_process_gets(lock.path)
    lock.close()


def test_a_lock_excludes_other_threads_even_through_separate_uses(tmp_path: Path) -> None:
    path = tmp_path / ".y.lock"
    inside: list[int] = []
    overlap: list[bool] = []

    def worker() -> None:
        for _ in range(50):
            with locked(path):
                inside.append(1)
                overlap.append(len(inside) > 1)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlap) == 200 and not any(overlap)


def test_try_acquire_keeps_the_lock_and_names_its_holder(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "s.lock"), FileLock(tmp_path / "s.lock")
    assert first.try_acquire("1234\n")
    assert not second.try_acquire("99\n") and second.holder() == "1234"
    first.close()
    assert second.try_acquire("99\n")
    second.close()


def test_write_atomic_replaces_whole_and_a_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    blocked = tmp_path / "ro"
    blocked.mkdir()
    blocked.chmod(0o500)
    try:
        if os.access(blocked, os.W_OK):  # root ignores the mode: make the target a directory instead
            (blocked / "x.json").mkdir()
        with pytest.raises(StoreUnavailable, match="cannot write"):
            write_atomic(blocked / "x.json", b"data")
        assert not [p for p in blocked.iterdir() if ".tmp-" in p.name]
    finally:
        blocked.chmod(0o700)


def test_the_cache_sees_a_rewrite_within_the_same_timestamp_tick(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    parses: list[bytes] = []
    cache = ChangedFileCache(lambda _, data: parses.append(data) or data.decode())
    path.write_bytes(b"aaa")
    st = os.stat(path)
    assert cache.get(path) == "aaa"
    path.write_bytes(b"bbb")  # same size, times put back: only the content tells
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.get(path) == "bbb"
    old = st.st_mtime_ns - 10 * RACY_NS
    os.utime(path, ns=(old, old))
    first = cache.get(path)
    count = len(parses)
    assert cache.get(path) is first and len(parses) == count  # unchanged content: not parsed again
