"""Files other processes rewrite, parsed again only when they changed.

``/metrics`` is scraped every 15 s and the web dashboard reloads often, while the files they
show (a generation run's record — megabytes for a large run —, the scheduler's run ledger)
change once a day or once a week. A ``stat`` per read is enough to know: a rewrite through
``durable.write_atomic`` is a new inode, an append changes the size, anything else the mtime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
Stamp = tuple[int, int, int]


class ChangedFileCache(Generic[T]):
    """``load(path)`` per path, kept until the file's inode, size or mtime changes.

    The values are shared between callers: treat them as read-only. A file replaced between the
    ``stat`` and the read is cached under the older stamp, so it is simply read once more.
    ``load`` may raise (``FileNotFoundError`` included); nothing is cached then.
    """

    def __init__(self, load: Callable[[Path], T]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._cached: dict[Path, tuple[Stamp, T]] = {}

    def get(self, path: Path) -> T:
        st = path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cached.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = self._load(path)
        with self._lock:
            self._cached[path] = (stamp, value)
        return value
