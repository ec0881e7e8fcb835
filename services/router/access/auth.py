"""Authentication (API key → service account) and authorization (declared entitlements).

Authentication happens once, in ``app.middleware.AuthMiddleware`` (which asks the
``Authenticator`` here), before any route, body parsing or validation runs: every path outside
``PUBLIC_PATHS`` answers 401 without a valid key, even for malformed requests and unknown
routes, so nothing about the API leaks to anonymous callers.

Authorization is one dependency driven by the tool registry: a route names the registry
action it runs (``requires("backlog_tool", "list")``) and the action's declared entitlement is
checked; ``/v1/tools/execute`` checks the entitlement of whichever action the body names.
The route cannot run a different action than the one it was authorized for, because the
guard hands it an ``ActionCall`` bound to that action. New tools register actions with their
entitlements and need no change here.

The web UI (``services/router/web``) is the one other way in, and its paths are listed here
so every door is visible in one file: its pages authenticate from a session cookie (made at
sign-in from an API key) instead of a key header, and run the same guards. The two never mix:
an API route ignores the cookie (a cookie-only request is a 401), because browsers attach
cookies to cross-site requests and the API has no CSRF token; a web page ignores key headers.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, cast
from urllib.parse import unquote_plus

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Scope

from services.router.access.delegation import acting_user
from services.router.access.rbac import RbacConfig
from services.router.access.redaction import KeyRedactor
from services.router.errors import AuthError, Forbidden
from services.router.runtime import Runtime
from services.router.stores.indexed import hold_if_free
from services.router.tools.registry import ActionSpec, grants

PUBLIC_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"})
PUBLIC_PREFIXES: tuple[str, ...] = ("/docs/assets/",)  # Swagger UI's files (``web/docs.py``)
# Tracker webhooks: a tracker cannot send one of our API keys, so these routes authenticate with
# that tracker's own shared secret instead (GitHub's HMAC signature, GitLab's token header, Jira's
# signature; ``webhook_secret_env`` in config/trackers.yml), checked in constant time by the route
# before anything in the body is read (``trackers/webhooks.py``). Deny by default still holds:
# the middleware lets only these paths through without a key, and only to that check.
TRACKER_SECRET_ROUTES: frozenset[str] = frozenset({"/v1/trackers/{name}/webhook"})
TRACKER_SECRET_PATH = re.compile(r"^/v1/trackers/[a-z0-9][a-z0-9._-]{0,47}/webhook$")
# Query parameters that look like credentials: refused everywhere, because URLs end up in
# proxy logs, browser history and shell history. Names are compared normalized (``query_name``):
# ``api_key[]``, ``api_key%20``, ``api.key``, ``api+key``, ``API-KEY`` are all ``apikey``.
QUERY_KEY_PARAMS: frozenset[str] = frozenset({
    "api_key", "apikey", "api-key", "x-api-key", "x_api_key", "key", "token", "access_token", "auth",
    "auth_token", "authorization", "bearer", "secret", "password",
})
QUERY_SEPARATORS = re.compile(r"[&;]")  # ``;`` too: some frameworks and proxies split on it
NOT_ALNUM = re.compile(r"[^0-9a-z]+")
TARGET_PARTS = re.compile(r"[/?&;=]")  # the pieces of a request line a key could be
# The web UI's paths: sign-in and assets need nothing; pages need a session cookie.
WEB_PUBLIC_PATHS: frozenset[str] = frozenset({"/login"})
WEB_PUBLIC_PREFIXES: tuple[str, ...] = ("/static/",)
WEB_SESSION_PATHS: frozenset[str] = frozenset({"/", "/items", "/logout", "/trends", "/problems", "/signals",
                                               "/reports"})
WEB_SESSION_PREFIXES: tuple[str, ...] = ("/items/", "/reports/")
PathKind = Literal["public", "web-public", "web-session", "tracker-secret", "api"]
MAX_KEY_LENGTH = 512
MIN_QUERY_KEY_LENGTH = 16  # shorter values cannot be keys (``rbac.MIN_KEY_LENGTH``): not worth a digest
UNAUTHENTICATED = "missing or unknown API key; send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


@dataclass(frozen=True, slots=True)
class Principal:
    """The service account a request acts as; its name is the actor on every event it writes."""

    name: str
    entitlements: frozenset[str]
    on_behalf_of: str | None = None
    """The person a delegate account acts for (``access.delegation``): ``on_behalf_of`` on its events."""

    def allows(self, needed: str) -> bool:
        return grants(self.entitlements, needed)


def unauthenticated() -> AuthError:
    """One error for a missing, unknown, ambiguous or malformed key: callers cannot tell which."""
    return AuthError(UNAUTHENTICATED)


def query_name(raw: str) -> str:
    """A parameter name as a key check compares it: decoded, NFKC, case-folded, letters and digits only."""
    return NOT_ALNUM.sub("", unicodedata.normalize("NFKC", unquote_plus(raw)).casefold())


KEY_NAMES: frozenset[str] = frozenset(query_name(name) for name in QUERY_KEY_PARAMS)


def query_pairs(raw_query: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` as sent (still encoded), split on ``&`` and ``;``."""
    for pair in QUERY_SEPARATORS.split(raw_query):
        name, _, value = pair.partition("=")
        if name or value:
            yield name, value


def refuse_query_keys(raw_query: str, is_key: Callable[[str], bool] | None = None) -> None:
    """Refuse a query string that names a key parameter or (with ``is_key``) holds a configured key."""
    for name, value in query_pairs(raw_query):
        normalized = query_name(name)
        carries_key = normalized in KEY_NAMES or (
            is_key is not None and any(is_key(unquote_plus(part)) for part in (name, value) if part))
        if carries_key:
            raise AuthError(
                "API keys are not accepted in the query string; send 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>' and rotate the key that was sent",
                **({"field": normalized} if normalized in KEY_NAMES else {}),
            )


def redact_query_keys(target: str, redactor: KeyRedactor | None = None) -> str:
    """``/path?env=prod&api_key=***``: the values of the query parameters that would carry a key,
    and (with ``redactor``) any configured key anywhere in the request line."""
    base, mark, query = target.partition("?")
    if mark:
        parts = []
        for part in re.split(r"([&;])", query):  # the separators kept, as sent
            name, eq, _ = part.partition("=")
            parts.append(f"{name}{eq}***" if eq and query_name(name) in KEY_NAMES else part)
        target = f"{base}?{''.join(parts)}"
    if redactor is not None:
        for piece in set(TARGET_PARTS.split(target)):
            if piece and redactor.is_key(unquote_plus(piece)):
                target = target.replace(piece, "***")
    return target


class AccessLogKeyRedactor(logging.Filter):
    """uvicorn's access log (``backlog serve --access-log``) prints the request line as sent, so a
    key sent in the query string — refused with 401 — would be written to the log. Found by the
    secrets canary of the reliability suite; the value is replaced by ``***``, and so is a
    configured key anywhere else in the line (``redactor``)."""

    def __init__(self) -> None:
        super().__init__()
        self.redactor: KeyRedactor | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query_keys(args[2], self.redactor), *args[3:])
        return True


def install_access_log_redaction(redactor: KeyRedactor | None = None, logger_name: str = "uvicorn.access") -> None:
    """One filter per logger; the latest app's ``redactor`` (its keys) is the one it uses."""
    logger = logging.getLogger(logger_name)
    found = next((f for f in logger.filters if isinstance(f, AccessLogKeyRedactor)), None)
    if found is None:
        found = AccessLogKeyRedactor()
        logger.addFilter(found)
    found.redactor = redactor


def presented_key(headers: Headers) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key``; None when absent or contradictory."""
    candidates: list[str] = []
    for value in headers.getlist("authorization"):
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        candidates.append(token.strip())
    candidates.extend(v.strip() for v in headers.getlist("x-api-key"))
    if not candidates or len(set(candidates)) != 1:
        return None
    key = candidates[0]
    return key if 0 < len(key) <= MAX_KEY_LENGTH else None


def path_kind(path: str) -> PathKind:
    """Which credential a path takes: none, none (web), a session cookie (web), or an API key."""
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return "public"
    if TRACKER_SECRET_PATH.match(path):
        return "tracker-secret"
    if path in WEB_PUBLIC_PATHS or path.startswith(WEB_PUBLIC_PREFIXES):
        return "web-public"
    if path in WEB_SESSION_PATHS or path.startswith(WEB_SESSION_PREFIXES):
        return "web-session"
    return "api"


class SessionAuth(Protocol):
    """Web sessions (``services.router.web.sessions.WebSessions``), as the middleware needs them."""

    def authenticate(self, scope: Scope) -> Principal | None:
        """The signed-in principal for the request's session cookie, or None."""

    def sign_in_required(self, scope: Scope) -> ASGIApp:
        """The answer for a page request without a valid session (a redirect to the sign-in page)."""


class Authenticator:
    def __init__(self, rbac: RbacConfig) -> None:
        self.rbac = rbac

    def is_key(self, text: str) -> bool:
        return MIN_QUERY_KEY_LENGTH <= len(text) <= MAX_KEY_LENGTH and self.rbac.identify(text) is not None

    def refuse_query_keys(self, raw_query: str) -> None:
        refuse_query_keys(raw_query, self.is_key)

    def authenticate(self, headers: Headers, raw_query: str) -> Principal:
        self.refuse_query_keys(raw_query)
        key = presented_key(headers)
        account = self.rbac.identify(key) if key is not None else None
        if account is None:
            raise unauthenticated()
        person = acting_user(headers, account=account.name, delegate=account.delegate)
        return Principal(account.name, account.entitlements, person)


# -- dependencies ---------------------------------------------------------------------------
# The two ways to send a key, for OpenAPI (the /docs "Authorize" button): written into the
# schema by ``document_security`` rather than declared as dependencies, because the key was
# already checked by AuthMiddleware and a dependency would be solved again on every request.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "A service account's API key (config/rbac.yml)"},
    "Bearer": {"type": "http", "scheme": "bearer",
               "description": "The same API key as `Authorization: Bearer <key>`"},
}
SECURITY_REQUIREMENT: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]


def current_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise unauthenticated()
    return principal


def current_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


# A coroutine, so FastAPI runs it on the event loop (/readyz): a plain ``def``
# dependency costs a worker-thread round trip per request, for a dictionary lookup.
async def runtime_dependency(request: Request) -> Runtime:
    return current_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]


def authorize(principal: Principal, spec: ActionSpec) -> None:
    if not principal.allows(spec.entitlement):
        raise Forbidden(
            f"account {principal.name!r} lacks {spec.entitlement} (needed by {spec.tool}.{spec.action})",
            entitlement=spec.entitlement, account=principal.name,
        )


def check_agent(principal: Principal, agent_id: object) -> None:
    """The acting identity comes from the key; a body claiming another identity is refused."""
    if agent_id is not None and agent_id != principal.name:
        raise Forbidden(
            f"agent_id does not match the API key's account {principal.name!r}",
            field="agent_id", account=principal.name,
        )


@dataclass(frozen=True, slots=True)
class ActionCall:
    """Permission to run exactly one registry action, as one principal."""

    runtime: Runtime
    principal: Principal
    spec: ActionSpec

    def run(self, params: dict[str, Any], *, agent_id: object = None) -> Any:
        check_agent(self.principal, agent_id)
        return self.runtime.execute(self.principal.name, self.spec.tool, self.spec.action, params,
                                    on_behalf_of=self.principal.on_behalf_of)

    def parse(self, params: dict[str, Any]) -> BaseModel:
        """The action's params as its model validates them (``ValidationFailed`` → 422)."""
        return self.runtime.registry.parse(self.spec, params)

    def run_parsed(self, parsed: BaseModel, *, agent_id: object = None) -> Any:
        """Run with params already validated by ``parse``."""
        check_agent(self.principal, agent_id)
        return self.spec.handler(self.runtime.context(self.principal.name), parsed)

    async def run_async(self, params: dict[str, Any], *, agent_id: object = None) -> Any:
        """Run the action from a route: on the event loop when it only reads an in-process index
        that is free right now, otherwise in the thread pool (writes, network stores, file reads).

        The thread-pool hop is about half the cost of serving one item from memory, and it is
        what held a single worker's p99 above 20 ms under 50 connections (bench/RESULTS.md).
        """
        if self.spec.from_index:
            with hold_if_free(self.runtime.store) as held:
                if held:
                    return self.run(params, agent_id=agent_id)
        return await run_in_threadpool(self.run, params, agent_id=agent_id)


class ActionGuard:
    """A route's declaration of the registry action it runs; requires that action's entitlement."""

    def __init__(self, tool: str, action: str) -> None:
        self.tool = tool
        self.action = action

    @property
    def name(self) -> str:
        return f"{self.tool}.{self.action}"

    def check(self, runtime: Runtime, principal: Principal) -> ActionCall:
        spec = runtime.registry.get(self.tool, self.action)
        authorize(principal, spec)
        return ActionCall(runtime, principal, spec)

    async def __call__(self, request: Request) -> ActionCall:
        # One dependency with no sub-dependencies: FastAPI solves each dependency anew on every
        # request, and four of them were half the cost of serving an item (bench/RESULTS.md).
        return self.check(current_runtime(request), current_principal(request))


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """For ``/v1/tools/execute``: authorizes whichever action the request body names."""

    runtime: Runtime
    principal: Principal

    def authorize(self, tool: str, action: str) -> ActionCall:
        spec = self.runtime.registry.get(tool, action)
        authorize(self.principal, spec)
        return ActionCall(self.runtime, self.principal, spec)


class DispatchGuard:
    """The dynamic counterpart of ``ActionGuard``: the entitlement comes from the body's action."""

    async def __call__(self, request: Request) -> Dispatcher:
        return Dispatcher(current_runtime(request), current_principal(request))


def requires(tool: str, action: str) -> Any:
    """``Depends`` on the guard for one registry action (the route's declared entitlement)."""
    return Depends(ActionGuard(tool, action))


DispatcherDep = Annotated[Dispatcher, Depends(DispatchGuard())]


def guard_of(route: APIRoute) -> ActionGuard | DispatchGuard | None:
    """The guard a route declared, if any (the deny-by-default check and the tests read this)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        if isinstance(dep.call, ActionGuard | DispatchGuard):
            return dep.call
        pending.extend(dep.dependencies)
    return None
