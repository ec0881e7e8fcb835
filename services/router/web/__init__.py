"""The web dashboard: server-rendered pages over the same registry actions as the API.

``register`` adds the pages to the router's app: ``/`` (dashboard per env), ``/items``,
``/items/{id}`` (with status, comment, owner and due-date forms for write accounts), ``/trends``,
``/problems``, ``/signals``, ``/reports`` (and ``/reports/{kind}/{name}``), ``/login``, ``/logout`` and
``/static/*`` (CSS, JS and an icon shipped in the package — nothing from a CDN). Pages are
plain Starlette routes, not API operations: they are not in the OpenAPI document, and they
authenticate with a session cookie (``sessions``) where the API takes a key header
(``access.auth.path_kind`` lists which paths are which).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles

from services.router.access.rbac import RbacConfig
from services.router.runtime import Runtime
from services.router.web import edit_forms, forms, insights, pages
from services.router.web.rendering import (
    STATIC,
    PageHandler,
    Web,
    WebRoute,
    check_declared_actions,
    template_environment,
)
from services.router.web.sessions import SessionStore, WebSessions

__all__ = ["SessionStore", "WebSessions", "register"]

READ_ITEM = ("backlog_tool.get", "backlog_tool.events", "backlog_tool.set_status", "backlog_tool.add_comment",
             "backlog_tool.set_owner", "backlog_tool.set_due_date")
REPORTS = ("architecture_pressure_tool.reports", "risk_history_tool.reports")
REPORT = ("architecture_pressure_tool.report", "risk_history_tool.report")


def register(app: FastAPI, *, runtime: Runtime, rbac: RbacConfig, sessions: SessionStore,
             envs: Callable[[], list[str]]) -> None:
    """Add the pages; refuse to start if a page declares an action the registry does not serve."""
    web = Web(runtime, template_environment(), envs, sessions)

    def page(path: str, handler: PageHandler, methods: list[str], *actions: str) -> WebRoute:
        return WebRoute(path, handler, web=web, methods=methods, actions=actions)

    routes = [
        page("/", pages.dashboard_page, ["GET"], "backlog_tool.dashboard", "backlog_tool.list"),
        page("/items", pages.items_page, ["GET"], "backlog_tool.list"),
        page("/items/{item_id}", pages.item_page, ["GET"], *READ_ITEM),
        page("/items/{item_id}/status", forms.change_status, ["POST"], *READ_ITEM),
        page("/items/{item_id}/comments", forms.add_comment, ["POST"], *READ_ITEM),
        page("/items/{item_id}/owner", edit_forms.change_owner, ["POST"], *READ_ITEM),
        page("/items/{item_id}/due-date", edit_forms.change_due_date, ["POST"], *READ_ITEM),
        page("/trends", insights.trends_page, ["GET"], "backlog_tool.trends", "backlog_tool.dashboard"),
        page("/problems", insights.problems_page, ["GET"], "backlog_tool.problems", "backlog_tool.list"),
        page("/signals", insights.signals_page, ["GET"], "signals_tool.list"),
        page("/reports", insights.reports_page, ["GET"], *REPORTS),
        page("/reports/{kind}/{name}", insights.report_page, ["GET"], *REPORT),
        page("/logout", forms.sign_out, ["POST"]),
    ]
    check_declared_actions(routes, runtime)
    sign_in = forms.SignIn(web, rbac, sessions)
    public: list[BaseRoute] = [
        Route("/login", sign_in.get, methods=["GET"], include_in_schema=False, name="login"),
        Route("/login", sign_in.post, methods=["POST"], include_in_schema=False, name="login_post"),
    ]
    app.router.routes.extend([*routes, *public])
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")
