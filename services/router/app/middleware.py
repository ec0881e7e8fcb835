"""Pure-ASGI middleware of the app: request ids and the per-request log line, the body size
limit, and authentication (an API key for API paths, a session cookie for web pages).

Pure ASGI (not ``BaseHTTPMiddleware``) so bodies are never copied twice, exceptions keep their
tracebacks, and the limit is enforced before FastAPI parses a byte of JSON.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.router.access.auth import Authenticator, SessionAuth, path_kind
from services.router.access.redaction import KeyRedactor
from services.router.api.errors import RequestTooLarge, error_response, internal_error_response
from services.router.errors import BacklogError

log = logging.getLogger("backlog.http")

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
UNMATCHED = "<unmatched>"

Observer = Callable[[str, str, int, float], None]  # method, route template, status, seconds


def request_id_for(headers: Headers, redactor: KeyRedactor | None = None) -> str:
    """Keep a caller's well-formed id (tracing across services); otherwise make one. An id equal
    to a configured API key (a careless client's) is replaced: it is echoed and logged."""
    incoming = headers.get(REQUEST_ID_HEADER.lower(), "")
    if not REQUEST_ID_PATTERN.match(incoming) or (redactor is not None and redactor.is_key(incoming)):
        return uuid.uuid4().hex
    return incoming


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The matched route's template, never the raw path: bounded label cardinality, no ids in logs."""
    route = scope.get("route")
    if route is None:  # refused before routing (401, 413): find what it would have matched
        route = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestContextMiddleware:
    """Request id (also in the ``X-Request-ID`` response header), one log line per request,
    request metrics, and the last line of defence: an unexpected exception becomes a bare 500
    whose traceback is logged here and never sent. With a ``redactor``, JSON error bodies are
    sent with any configured API key in them replaced (``access/redaction.py``)."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], observe: Observer | None = None,
                 redactor: KeyRedactor | None = None) -> None:
        self.app = app
        self.routes = routes
        self.observe = observe
        self.redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_for(Headers(scope=scope), self.redactor)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        response_started = False
        held: list[Message] = []  # an error response's start and body, until the body is complete

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers.setdefault("X-Content-Type-Options", "nosniff")  # JSON, static files, errors: all of them
                if self.redactor is not None and status >= 400 and headers.get("content-type", "").startswith(
                        "application/json"):
                    held.append(message)
                    return
            elif held:
                held.append(message)
                if message.get("more_body", False):
                    return
                for scrubbed in self._scrubbed(held):
                    await send(scrubbed)
                held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error request_id=%s method=%s route=%s", request_id, scope["method"],
                          route_template(scope, self.routes))
            if not response_started:
                await internal_error_response(request_id)(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope, self.routes)
            principal = state.get("principal")
            log.info(
                "request_id=%s method=%s route=%s status=%d duration_ms=%.1f account=%s",
                request_id, scope["method"], route, status, seconds * 1000, getattr(principal, "name", "-"),
            )
            if self.observe is not None:
                self.observe(scope["method"], route, status, seconds)


    def _scrubbed(self, held: list[Message]) -> list[Message]:
        """The held error response with keys taken out of its JSON body (as sent when it has none)."""
        assert self.redactor is not None
        start, bodies = held[0], held[1:]
        raw = b"".join(m.get("body", b"") for m in bodies)
        try:
            clean = orjson.dumps(self.redactor.scrub_json(orjson.loads(raw)))
        except orjson.JSONDecodeError:
            return held
        if clean == raw:
            return held
        MutableHeaders(scope=start)["content-length"] = str(len(clean))
        return [start, {"type": "http.response.body", "body": clean, "more_body": False}]


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413 before the application reads any of it.

    A declared ``Content-Length`` over the limit is refused at once; otherwise the body is
    buffered (it is at most ``limit`` bytes) and replayed to the application.
    """

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"request body is over {self.limit} bytes", limit_bytes=self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:  # no body (a GET): nothing to hold back
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await error_response(self.too_large())(scope, receive, send)
            return
        buffered: list[Message] = []
        total = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.limit:
                await error_response(self.too_large())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


class AuthMiddleware:
    """Sets ``scope["state"]["principal"]`` or answers 401; public paths pass unauthenticated.

    Without ``sessions`` (no web UI) the web paths are API paths like any other: 401 without a key.
    """

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, sessions: SessionAuth | None = None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        kind = path_kind(scope["path"])
        if kind.startswith("web") and self.sessions is None:
            kind = "api"
        try:
            if kind in ("public", "web-public"):
                self.authenticator.refuse_query_keys(query)
            elif kind == "web-session" and self.sessions is not None:
                self.authenticator.refuse_query_keys(query)
                principal = self.sessions.authenticate(scope)
                if principal is None:
                    await self.sessions.sign_in_required(scope)(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
            else:
                principal = self.authenticator.authenticate(Headers(scope=scope), query)
                scope.setdefault("state", {})["principal"] = principal
        except BacklogError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
