"""The app factory: one FastAPI app over one Runtime and one RBAC config, both passed in.

Nothing is read at import time; ``create_app()`` without arguments builds the runtime from the
environment and reads ``config/rbac.yml`` (or ``$BACKLOG_RBAC_PATH``) with keys from the
environment. Tests pass their own runtime (memory store, fixed clock) and RBAC config.

Deny by default: the factory refuses to build an app with a non-public route that does not
name the registry action it runs, so a forgotten guard fails at startup, not in production.
The web dashboard (``services.router.web``) is added with ``web=True`` (the default): its pages
declare their registry actions the same way and sign in with a session cookie.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.router import web as web_ui
from services.router.access.auth import (
    PUBLIC_PATHS,
    SECURITY_REQUIREMENT,
    SECURITY_SCHEMES,
    TRACKER_SECRET_ROUTES,
    ActionGuard,
    Authenticator,
    guard_of,
    install_access_log_redaction,
)
from services.router.access.rbac import RbacConfig, load_rbac
from services.router.access.redaction import KeyRedactor
from services.router.api import (
    routes_backlog,
    routes_health,
    routes_insights,
    routes_lifecycle,
    routes_signals,
    routes_tools,
    routes_trackers,
)
from services.router.api.errors import OrjsonResponse, error_docs, install_error_handlers
from services.router.api.health_sources import HealthSources
from services.router.api.metrics_trackers import TrackerCollector
from services.router.app.middleware import MAX_BODY_BYTES, AuthMiddleware, BodyLimitMiddleware, RequestContextMiddleware
from services.router.errors import NotFound
from services.router.runtime import Runtime, build_runtime
from services.router.web import docs
from services.router.web.proxy_auth import ProxyAuth

log = logging.getLogger("backlog.api")

PROTECTED_ERRORS = error_docs(401, 403, 413, 422, 500, 503)
DESCRIPTION = """Turns platform signals into an owned, prioritized, deduplicated engineering backlog.

Authenticate with a service account's API key (`config/rbac.yml`) in `X-API-Key: <key>` or
`Authorization: Bearer <key>`; keys in the query string are refused. Each operation names the
entitlement it needs (`x-entitlement`); `admin` implies `write` implies `read`.
"""


def package_version() -> str:
    try:
        return version("backlog-bridge")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def create_app(runtime: Runtime | None = None, rbac: RbacConfig | None = None, *, web: bool = True) -> FastAPI:
    owns_runtime = runtime is None
    rt = runtime if runtime is not None else build_runtime()
    try:
        config = rbac if rbac is not None else load_rbac(rt.settings.rbac_path)
    except Exception:
        if owns_runtime:
            rt.close()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log_accounts(config)
        rt.start_background()  # the router returns to Postgres on its own timer, with no request needed
        try:
            yield
        finally:
            if rt.failover is not None:
                rt.failover.stop()
            if owns_runtime:
                rt.close()

    app = FastAPI(
        title="Backlog Bridge", version=package_version(), description=DESCRIPTION,
        docs_url=None, redoc_url=None, openapi_url=docs.OPENAPI_URL,
        default_response_class=OrjsonResponse, lifespan=lifespan,
    )
    metrics = routes_health.ApiMetrics(rt.store, clock=rt.clock, sources=HealthSources.from_settings(rt.settings),
                                       rejections=rt.rejections)
    metrics.registry.register(TrackerCollector(rt.store, rt.settings))
    app.state.runtime = rt
    app.state.rbac = config
    app.state.metrics = metrics
    sessions: web_ui.WebSessions | None = None

    authenticator = Authenticator(config)
    redactor = KeyRedactor(authenticator.is_key)
    install_error_handlers(app)
    docs.register(app)
    install_access_log_redaction(redactor)
    routes_health.register(app)
    routes_tools.register(app, responses=PROTECTED_ERRORS)
    routes_backlog.register(app, responses=PROTECTED_ERRORS)
    routes_lifecycle.register(app, responses=PROTECTED_ERRORS)
    routes_insights.register(app, responses=PROTECTED_ERRORS)
    routes_signals.register(app, responses=PROTECTED_ERRORS)
    routes_trackers.register(app, responses={})
    document_guards(app, rt)
    document_security(app, rt)
    if web:
        store = web_ui.SessionStore()
        web_ui.register(app, runtime=rt, rbac=config, sessions=store, envs=metrics.env_index.envs)
        sessions = web_ui.WebSessions(store, ProxyAuth(config) if config.web is not None else None)

    # Outermost last: request context → authentication → body limit → routes.
    app.add_middleware(BodyLimitMiddleware, limit=MAX_BODY_BYTES)
    app.add_middleware(AuthMiddleware, authenticator=authenticator, sessions=sessions)
    app.add_middleware(RequestContextMiddleware, routes=app.router.routes, observe=metrics.observe, redactor=redactor)
    return app


def document_security(app: FastAPI, runtime: Runtime) -> None:
    """Every operation outside ``PUBLIC_PATHS`` takes an API key; say so in the schema. The
    ``/v1/tools/execute`` body is described per action (``routes_tools.execute_body_schema``)."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path not in PUBLIC_PATHS | TRACKER_SECRET_ROUTES:
            route.openapi_extra = {**(route.openapi_extra or {}), "security": SECURITY_REQUIREMENT}
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            routes_tools.document_execute_body(document, runtime.registry)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def document_guards(app: FastAPI, runtime: Runtime) -> None:
    """Refuse unguarded routes; write each route's entitlement into its OpenAPI operation."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        if route.path in TRACKER_SECRET_ROUTES:  # authenticated by the tracker's secret (access/auth.py)
            route.openapi_extra = {"security": [], "x-authentication": "tracker webhook secret"}
            continue
        guard = guard_of(route)
        if guard is None:
            methods = ",".join(sorted(route.methods or ()))
            raise RuntimeError(f"route {methods} {route.path} declares no registry action (deny by default)")
        if not isinstance(guard, ActionGuard):
            route.description = (
                "Runs the named action; requires the entitlement that action declares:\n\n"
                + routes_tools.describe_catalog(runtime.registry)
            )
            route.openapi_extra = {
                "x-entitlements": {f"{s.tool}.{s.action}": s.entitlement for s in runtime.registry.specs()}
            }
            continue
        try:
            spec = runtime.registry.get(guard.tool, guard.action)
        except NotFound:
            log.warning("route %s runs %s, which is not registered: it answers 404", route.path, guard.name)
            route.openapi_extra = {"x-action": guard.name}
            continue
        route.description = f"Requires `{spec.entitlement}` (runs `{guard.name}`)."
        route.openapi_extra = {"x-entitlement": spec.entitlement, "x-action": guard.name}


def log_accounts(config: RbacConfig) -> None:
    enabled = ", ".join(a.name for a in config.enabled) or "none"
    log.info("API accounts enabled: %s", enabled)
    for account in config.disabled:
        log.info("API account %s disabled: %s is not set", account.name, account.key_env)
    if not config.enabled:
        log.warning("no API key is configured: every route but /healthz, /readyz and /metrics answers 401")
