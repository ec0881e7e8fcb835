"""Whole-file replacement that survives a crash or a power loss at any point.

Reports, generation records and notifier state are small files rewritten in place; a reader (or a
restart) must see the old file or the new one, never half of either, and a completed replace
must still be there after power loss — hence temp file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.router.errors import StoreUnavailable
from services.router.stores.jsonl_log import fsync_dir


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``; a failure is ``StoreUnavailable`` and leaves no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StoreUnavailable(f"cannot write {path}: {exc.strerror or exc}") from exc
