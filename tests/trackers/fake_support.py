"""What the tracker fakes share: a ticking clock, injected faults, JSON answers.

The fakes follow each tracker's documented REST contract statefully and are served in-process
through ``httpx.MockTransport``; the real Redmine gets the same fault injection through
:class:`FaultTransport`, so the contract suite injects a 429 or a 503 the same way everywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class TickingClock:
    """Remote time: every change the fake records happens one second after the previous one."""

    def __init__(self, at: datetime = START) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def tick(self) -> datetime:
        self._at += timedelta(seconds=1)
        return self._at

    def advance(self, seconds: float) -> None:
        self._at += timedelta(seconds=seconds)


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class Faults:
    """Answers queued for the next requests, before the fake (or the real server) sees them."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self.requests = 0  # every request that reached the transport, faulted or not

    def next(self, status: int, *, headers: dict[str, str] | None = None, body: Any = None, times: int = 1) -> None:
        for _ in range(times):
            self._queue.append(Fault(status, dict(headers or {}), body))

    def take(self) -> httpx.Response | None:
        self.requests += 1
        if not self._queue:
            return None
        fault = self._queue.popleft()
        return respond(fault.status, fault.body, fault.headers)


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers={"content-type": "text/html", **(headers or {})})
    return httpx.Response(status, content=orjson.dumps(body),
                          headers={"content-type": "application/json; charset=utf-8", **(headers or {})})


def read_json(request: httpx.Request) -> Any:
    try:
        return orjson.loads(request.content or b"null")
    except orjson.JSONDecodeError:
        return None


class FaultTransport(httpx.BaseTransport):
    """Wraps a real transport: queued faults answer first, everything else goes through."""

    def __init__(self, inner: httpx.BaseTransport, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        faulted = self.faults.take()
        if faulted is not None:
            return faulted
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def z(at: datetime) -> str:
    """``2026-11-26T12:00:01Z``: GitHub's and GitLab's whole-second timestamps."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
