"""The notifier's state (what is firing, reminders sent, the outbox) in one JSON file.

Written atomically (``files.write_atomic``) under the file's lock (``files.locked``), so a crash
never leaves half a state and two runs never interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from services.router.alerts.notifier import State, empty_state
from services.router.files import locked, write_atomic


class AlertStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[None]:
        with locked(self.path.with_suffix(".lock")):
            yield

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
