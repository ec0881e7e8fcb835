"""Digest files on disk: atomic replacement and a lock for read-merge-write.

A reader (weekly generation, a person, the dashboard) must never see half a digest, so each
file is replaced atomically (``files.write_atomic``: temp names start with a dot and do not end
in ``.json``/``.md``, so a ``*.json`` glob never picks one up). Runs that merge into an existing
file (a digest for one env keeps the others) hold the folder's lock from read to rename.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from services.router.files import locked, write_atomic

log = logging.getLogger("backlog.digest")

LOCK_NAME = ".digest.lock"


def write_json_and_md(json_path: Path, digest: dict[str, Any], markdown: str) -> None:
    """The JSON first (what machines read), then its ``.md`` twin."""
    write_atomic(json_path, orjson.dumps(digest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    write_atomic(json_path.with_suffix(".md"), markdown.encode("utf-8"))


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    with locked(folder / LOCK_NAME):
        yield


def read_json(path: Path) -> dict[str, Any] | None:
    """A previous digest to merge into; an unreadable one is replaced (and said so in the log).

    A symlink is not followed (it could point anywhere, e.g. planted in the reports folder): it is
    replaced by the new file, and the file it pointed to is neither read nor written."""
    if path.is_symlink():
        log.warning("ignoring %s: a symlink, not a digest file; it will be replaced", path)
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("ignoring unreadable digest %s (%s); it will be replaced", path, exc)
        return None
    return data if isinstance(data, dict) else None
