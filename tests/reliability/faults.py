"""Inject ENOSPC/EIO into the JSONL store's ``os.write``, ``os.fsync`` and ``os.replace``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from services.router.stores import jsonl, jsonl_log


class FaultyOs(SimpleNamespace):
    """Proxy of ``os`` whose ``call`` fails with ``code`` on its k-th use (1-based)."""

    def __init__(self, call: str, k: int, code: int) -> None:
        super().__init__()
        self._call, self._k, self._code, self.calls = call, k, code, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name != self._call:
            return real

        def faulty(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self._k:
                raise OSError(self._code, os.strerror(self._code))
            return real(*args, **kwargs)

        return faulty


@contextmanager
def fault(monkeypatch: pytest.MonkeyPatch, call: str, k: int, code: int = errno.ENOSPC) -> Iterator[FaultyOs]:
    proxy = FaultyOs(call, k, code)
    with monkeypatch.context() as m:
        m.setattr(jsonl_log, "os", proxy)
        m.setattr(jsonl, "os", proxy)
        yield proxy
