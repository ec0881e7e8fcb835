"""The notifier's state (what is firing, reminders sent, the outbox) in one JSON file.

Written atomically (temp, fsync, rename) under an flock, so a crash never leaves half a state
and two runs never interleave.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from services.router.alerts.notifier import State, empty_state
from services.router.durable import write_atomic


class AlertStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> State:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return empty_state()
        except orjson.JSONDecodeError:
            return empty_state()  # a damaged state re-sends at worst once; never blocks alerting
        state = empty_state()
        if isinstance(data, dict):
            state.update({k: data[k] for k in state if k in data})
        return state

    def save(self, state: State) -> None:
        write_atomic(self.path, orjson.dumps(state, option=orjson.OPT_INDENT_2))
