"""Templates, page responses, and the one way a page runs a registry action.

A page runs actions only through ``Page.run``, which goes through the API's own
``ActionGuard`` (the registry action's declared entitlement, checked by ``auth.authorize``)
— so the web UI cannot drift from the API's authorization. Each route declares the actions it
may run (``WebRoute.actions``); running anything else is a programming error, and an action the
registry does not serve stops the app at startup (deny by default, as for API routes).

Errors raised by actions are mapped to a status by the API's one map (``errors.status_for``)
and shown as an HTML page instead of JSON. Every page is sent with a strict Content-Security-
Policy (scripts and styles from ``/static`` only: the templates have no inline script or
style), ``no-store`` caching (pages carry a CSRF token) and no framing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from services.router.access.auth import ActionGuard, Principal, current_principal
from services.router.api.errors import status_for
from services.router.errors import BacklogError
from services.router.runtime import Runtime
from services.router.web.sessions import Session, SessionStore, current_session

log = logging.getLogger("backlog.web")

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def asset_version() -> str:
    """A short hash of the shipped assets, appended to their URLs so a deploy is never served stale CSS."""
    sha = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            sha.update(path.name.encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()[:10]


def template_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["asset_version"] = asset_version()
    return env


def html(env: Environment, template: str, context: dict[str, Any], *, status: int = 200,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    body = env.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


@dataclass
class Web:
    """What every page needs, built once per app."""

    runtime: Runtime
    templates: Environment
    envs: Callable[[], list[str]]
    sessions: SessionStore


@dataclass
class Page:
    """One request to a page: who is asking, and the actions its route declared."""

    web: Web
    request: Request
    principal: Principal
    session: Session
    declared: frozenset[str]

    def _guard(self, tool: str, action: str) -> ActionGuard:
        name = f"{tool}.{action}"
        if name not in self.declared:
            raise RuntimeError(f"page {self.request.url.path} runs {name}, which its route does not declare")
        return ActionGuard(tool, action)

    async def run(self, tool: str, action: str, params: dict[str, Any]) -> Any:
        """Authorize by the action's declared entitlement (the API's guard), then run it as the API
        does (``ActionCall.run_async``: index reads on the loop, everything else in the pool)."""
        return await self._guard(tool, action).check(self.web.runtime, self.principal).run_async(params)

    def may(self, tool: str, action: str) -> bool:
        """Whether the signed-in account holds the action's entitlement (to show or hide a form)."""
        self._guard(tool, action)
        return self.principal.allows(self.web.runtime.registry.get(tool, action).entitlement)

    def base_context(self, **extra: Any) -> dict[str, Any]:
        registry = self.web.runtime.registry
        writes = self.principal.allows(registry.get("backlog_tool", "set_status").entitlement)
        return {
            "account": self.principal.name,
            "person": self.principal.on_behalf_of,
            "can_write": writes,
            "can_read_signals": self.principal.allows(registry.get("signals_tool", "list").entitlement),
            "csrf_token": self.session.csrf_token,
            "path": self.request.url.path,
            **extra,
        }

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return html(self.web.templates, template, self.base_context(**context), status=status)

    def error(self, exc: BacklogError, **context: Any) -> HTMLResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("web page %s failed: %s", self.request.url.path, exc.message)
        return self.render("error.html", status=status, status_code=status, message=exc.message,
                           details=exc.details, **context)


PageHandler = Callable[[Page], Awaitable[Response]]


class WebRoute(Route):
    """A page route with the registry actions it may run (deny by default, like ``requires``)."""

    def __init__(self, path: str, handler: PageHandler, *, web: Web, methods: list[str], actions: tuple[str, ...]):
        self.actions = frozenset(actions)
        declared = self.actions

        async def endpoint(request: Request) -> Response:
            page = Page(web, request, current_principal(request), current_session(request.scope), declared)
            try:
                return await handler(page)
            except BacklogError as exc:
                return page.error(exc)

        super().__init__(path, endpoint, methods=methods, include_in_schema=False, name=handler.__name__)


def check_declared_actions(routes: list[WebRoute], runtime: Runtime) -> None:
    """Every action a page declares must be served: a missing one stops the app at startup."""
    for route in routes:
        for name in sorted(route.actions):
            tool, _, action = name.partition(".")
            try:
                runtime.registry.get(tool, action)
            except BacklogError as exc:
                raise RuntimeError(f"web route {route.path} declares {name}, which is not served: {exc.message}") \
                    from None
