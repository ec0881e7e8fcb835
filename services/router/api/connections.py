"""Connection limits of ``backlog serve``: a request-header deadline and a cap on open connections.

uvicorn closes a connection that idles *between* requests (keep-alive, 5 s) but never one that
has not finished sending its first request's headers: an idle TCP connection, or one trickling
a header byte at a time, stayed open for as long as the client liked, and the open-file limit
was the only ceiling (issue 23). ``guarded_protocol`` is uvicorn's httptools protocol with:

- **a header deadline** (``BACKLOG_HEADER_TIMEOUT_SECONDS``, default 10): a connection whose
  request headers are not complete that long after it opened (or after its next request began)
  is answered ``408`` and closed;
- **a cap** (``BACKLOG_MAX_CONNECTIONS``, default 1000): a connection beyond the cap takes the
  place of the *oldest idle* one (waiting for headers, or kept alive between requests), which is
  closed; only when every connection has a request in flight is the new one answered ``503``
  (``Retry-After: 1``) and closed. So a flood of silent connections cannot lock real clients
  out, and the server never holds more than the cap.

Every closing is counted by reason in ``CLOSED`` (``/metrics``:
``backlog_http_connections_closed_total{reason}``) and logged at most once a minute per reason
with the count, so a flood shows without flooding the log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("backlog.http")

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
LOG_EVERY_SECONDS = 60.0
REASONS: dict[str, str] = {
    "header_timeout": "closed connection(s) that sent no complete request headers in time (408)",
    "evicted_idle": "closed the oldest idle connection(s) to make room at the connection cap",
    "refused_at_cap": "refused new connection(s) at the connection cap: every connection had a request in flight "
                      "(503)",
}
CLOSED: collections.Counter[str] = collections.Counter()
_last_logged: dict[str, tuple[float, int]] = {}


def note(reason: str, **context: Any) -> None:
    """Count a closing; log the count since the last line at most once per ``LOG_EVERY_SECONDS``."""
    CLOSED[reason] += 1
    now = time.monotonic()
    logged_at, logged_count = _last_logged.get(reason, (float("-inf"), 0))
    if now - logged_at >= LOG_EVERY_SECONDS:
        details = " ".join(f"{k}={v}" for k, v in context.items())
        log.warning("%s: %d since the last report %s", REASONS[reason], CLOSED[reason] - logged_count, details)
        _last_logged[reason] = (now, CLOSED[reason])


def simple_response(status: int, reason: str, message: str, *extra: str) -> bytes:
    body = ('{"error": "' + message + '"}').encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close", "x-content-type-options: nosniff", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; the limits are class attributes set by ``guarded_protocol``."""

    header_timeout_seconds: ClassVar[float] = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS

    _header_timer: asyncio.TimerHandle | None = None
    idle_since: float | None = None  # loop time it started waiting for a request; None while one is in flight

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self.loop.time()
        self._arm_header_timer()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self.idle_since = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self.idle_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.timeout_keep_alive_task is not None:
            self.idle_since = self.loop.time()  # kept alive, waiting for the next request

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._headers_too_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        note("header_timeout", timeout_seconds=self.header_timeout_seconds)
        self.transport.write(simple_response(
            408, "Request Timeout", f"request headers not received within {self.header_timeout_seconds:g} s"))
        self.transport.close()

    def _make_room(self) -> None:
        idle = [c for c in self.connections
                if c is not self and isinstance(c, GuardedHttpToolsProtocol) and c.idle_since is not None
                and not c.transport.is_closing()]
        if idle:
            oldest = min(idle, key=lambda c: c.idle_since or 0.0)
            oldest.connections.discard(oldest)  # gone now: its connection_lost comes on the next loop turn
            oldest.transport.close()
            note("evicted_idle", max_connections=self.max_connections)
            return
        note("refused_at_cap", max_connections=self.max_connections)
        self.connections.discard(self)
        self._cancel_header_timer()
        self.transport.write(simple_response(503, "Service Unavailable", "too many open connections; retry later",
                                             "retry-after: 1"))
        self.transport.close()


def guarded_protocol(*, header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[GuardedHttpToolsProtocol]:
    """uvicorn's ``http=`` protocol class with these limits."""
    if header_timeout_seconds <= 0 or max_connections < 1:
        raise ValueError("header_timeout_seconds must be > 0 and max_connections >= 1")
    attributes = {"header_timeout_seconds": header_timeout_seconds, "max_connections": max_connections}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attributes)
