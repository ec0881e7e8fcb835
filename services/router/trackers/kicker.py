"""Run the pulls webhooks scheduled soon after they arrive, in one background thread.

The route answers 202 as soon as the pull is in the outbox; this makes it happen within seconds
instead of at the next ``tracker_sync`` run. A kick while a pull runs is remembered, so a
webhook that lands mid-pull is not left for the next run. Failures are logged: the outbox keeps
the pull, and the next run does it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("backlog.trackers")


class PullKicker:
    def __init__(self, run: Callable[[str], object]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._due: set[str] = set()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def kick(self, tracker: str) -> None:
        with self._lock:
            self._due.add(tracker)
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tracker-pulls", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._due:
                    self._thread = None
                    self._idle.set()
                    return
                tracker = self._due.pop()
            try:
                self._run(tracker)
            except Exception as exc:  # the outbox keeps the pull for the next run
                log.warning("tracker %s: scheduled pull failed (%s: %s); the next sync takes it", tracker,
                            type(exc).__name__, getattr(exc, "message", exc))

    def wait_idle(self, timeout_seconds: float) -> bool:
        """True once nothing is due or running (tests, shutdown)."""
        return self._idle.wait(timeout_seconds)

    def close(self) -> None:
        self.wait_idle(5.0)
