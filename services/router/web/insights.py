"""The pages after the dashboard: ``/trends``, ``/problems``, ``/signals`` and ``/reports``.

Each runs registry actions through ``Page.run`` like every other page (the account's
entitlements decide, as for the API): trends and problems need ``tools.backlog.read``, signals
``tools.signals.read``, platform reports ``tools.pressure.read`` and risk reports
``tools.risk.read`` — a section the account may not read is left out, not shown as an error.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.router.api.query import query_params
from services.router.api.routes_insights import ProblemsQuery, TrendsQuery
from services.router.errors import NotFound, ValidationFailed
from services.router.web import insight_views as views
from services.router.web.markdown import render_report
from services.router.web.pages import TOOL, active_items, chosen_env
from services.router.web.rendering import Page

SIGNAL_KINDS = ("incident", "alert", "slo_breach", "followup", "deploy", "vulnerability")
SIGNAL_STATUSES = ("open", "mitigated", "resolved", "firing", "done", "fixed")
REPORT_TOOLS = {"platform": "architecture_pressure_tool", "risk": "risk_history_tool"}
SIGNALS_SHOWN = 200


async def trends_page(page: Page) -> Response:
    envs = await run_in_threadpool(page.web.envs)
    query = page.request.query_params
    env = chosen_env(query, envs)
    try:
        params = query_params(TrendsQuery, {k: query[k] for k in ("weeks", "service") if query.get(k)})
    except ValidationFailed as exc:
        return page.error(exc, env=env)
    weeks = int(params.get("weeks", 12))
    service = params.get("service")
    scope = {"env": env} if env else {}
    result = await page.run(TOOL, "trends", {**scope, **params})
    board = await page.run(TOOL, "dashboard", scope)
    multiples = []
    if service is None:
        for i, top in enumerate(board["top_services"][: views.SMALL_MULTIPLES]):
            rows = (await page.run(TOOL, "trends", {**scope, "service": top["service"], "weeks": weeks}))["weeks"]
            multiples.append({"service": top["service"], "active": top["count"], "rows": rows,
                              "chart": views.service_chart(top["service"], rows, i),
                              "href": views.page_url("/trends", env=env, service=top["service"], weeks=weeks)})
    scope_text = " / ".join(x for x in (env or "all envs", service) if x)
    return page.render(
        "trends.html", env=env, envs=envs, weeks=weeks, week_choices=views.WEEK_CHOICES, service=service,
        result=result, charts=views.trend_charts(result["weeks"], scope_text), multiples=multiples,
        scope_text=scope_text, all_href=views.page_url("/trends", env=env, weeks=weeks),
    )


async def problems_page(page: Page) -> Response:
    envs = await run_in_threadpool(page.web.envs)
    query = page.request.query_params
    env = chosen_env(query, envs) or (envs[0] if envs else "prod")
    try:
        params = query_params(ProblemsQuery, {"env": env, "limit": "500",
                                              **({"service": query["service"]} if query.get("service") else {})})
    except ValidationFailed as exc:
        return page.error(exc, env=env)
    result = await page.run(TOOL, "problems", params)
    active, truncated = await active_items(page, env)
    today = page.web.runtime.clock.now().date()
    rows = views.problem_rows(result["problems"], {r["id"]: r for r in active}, env, today)
    return page.render("problems.html", env=env, envs=envs, result=result, problems=rows, service=params.get("service"),
                       truncated=truncated, today=today.isoformat(),
                       all_href=views.page_url("/problems", env=env))


async def signals_page(page: Page) -> Response:
    envs = await run_in_threadpool(page.web.envs)
    query = page.request.query_params
    filters = {k: query[k] for k in ("env", "service", "kind", "status") if query.get(k)}
    error: str | None = None
    status = 200
    try:
        result = await page.run("signals_tool", "list", {**filters, "limit": SIGNALS_SHOWN})
    except ValidationFailed as exc:
        result, error, status = {"count": 0, "signals": []}, exc.message, 422
    return page.render("signals.html", status=status, envs=envs, env=filters.get("env"), filters=filters,
                       result=result, signals=views.signal_rows(result["signals"]), kinds=SIGNAL_KINDS,
                       statuses=SIGNAL_STATUSES, error=error, shown=SIGNALS_SHOWN)


async def reports_page(page: Page) -> Response:
    sections: list[dict[str, Any]] = []
    for kind, tool in REPORT_TOOLS.items():
        if page.may(tool, "reports"):
            listed = await page.run(tool, "reports", {})
            sections.append({"kind": kind, **listed})
    return page.render("reports.html", sections=sections, env=None)


async def report_page(page: Page) -> Response:
    kind = page.request.path_params["kind"]
    tool = REPORT_TOOLS.get(kind)
    if tool is None:
        return page.error(NotFound(f"no kind of report {kind!r}; known: platform, risk"), env=None)
    report = await page.run(tool, "report", {"name": page.request.path_params["name"]})
    html = None
    if report["markdown"] is not None:
        html = render_report(report["markdown"], report["services"],
                             lambda env, service: views.page_url("/problems", env=env, service=service))
    return page.render("report.html", report=report, html=html, env=None)
