"""The read pages: the dashboard (``/``), the items list (``/items``) and an item (``/items/{id}``).

Every number comes from the same registry actions the API serves (``backlog_tool.dashboard``,
``list``, ``get``, ``events``), run through the API's guard; the held-back items of the last
generation come from its record (``generation.records.last_generation``), shown under the
dashboard's own authorization.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

from services.router.api.query import ItemListQuery, query_params
from services.router.domain.acceptance import hold
from services.router.domain.enums import ALL_PRIORITIES, ALL_STATUSES
from services.router.domain.queries import MAX_PAGE
from services.router.domain.transitions import is_overdue
from services.router.errors import ValidationFailed
from services.router.generation.records import GenerationRecord, last_generation
from services.router.web import views
from services.router.web.insight_views import evidence_links, grouped_overdue
from services.router.web.rendering import Page

TOOL = "backlog_tool"
DEFAULT_ENV = "prod"
MAX_SCANNED = 5_000  # active items read for the carry-over table; a bigger backlog shows the first ones
ITEM_FILTERS = ("env", "service", "status", "owner", "priority", "category", "overdue", "active", "limit", "cursor",
                "sort", "q")
NOTICES = {"status": "Status changed.", "comment": "Comment added.", "owner": "Owner changed.",
           "due_date": "Due date changed."}
REFRESH_SECONDS = 60


def chosen_env(query: QueryParams, envs: list[str]) -> str | None:
    """``?env=`` picks an env, ``?env=`` (empty) all envs; without it prod (or the first env with items)."""
    if "env" in query:
        return query["env"] or None
    if DEFAULT_ENV in envs or not envs:
        return DEFAULT_ENV
    return envs[0]


async def active_items(page: Page, env: str | None) -> tuple[list[dict[str, Any]], bool]:
    """Active items through ``backlog_tool.list`` (capped at ``MAX_SCANNED``; the flag says when it cut)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < MAX_SCANNED:
        params: dict[str, Any] = {"active": True, "limit": MAX_PAGE, **({"env": env} if env else {})}
        if cursor:
            params["cursor"] = cursor
        result = await page.run(TOOL, "list", params)
        found.extend(result["items"])
        cursor = result["next_cursor"]
        if cursor is None:
            return found, False
    return found[:MAX_SCANNED], True


def generations(page: Page, env: str | None, envs: list[str]) -> list[GenerationRecord]:
    state_dir = page.web.runtime.settings.state_dir
    records = [last_generation(state_dir, e) for e in ([env] if env else envs)]
    return [r for r in records if r is not None]


async def dashboard_page(page: Page) -> Response:
    envs = await run_in_threadpool(page.web.envs)
    env = chosen_env(page.request.query_params, envs)
    board = await page.run(TOOL, "dashboard", {"env": env} if env else {})
    active, truncated = await active_items(page, env)
    records = await run_in_threadpool(generations, page, env, envs)
    today = page.web.runtime.clock.now().date()
    return page.render(
        "dashboard.html", env=env, envs=envs, board=board, tiles=views.tiles(board, env),
        priority_bars=views.priority_bars(board), status_bars=views.status_bars(board),
        overdue=grouped_overdue(board["overdue"], today), services=views.service_rows(board, env),
        streaks=views.carry_over_streaks(active), scanned_truncated=truncated, max_scanned=MAX_SCANNED,
        generations=records, alerts=board.get("alerts", []), overdue_all_href=views.items_url(env=env, overdue=True),
        refresh_seconds=REFRESH_SECONDS, today=today.isoformat(),
    )


def item_filters(query: QueryParams) -> dict[str, str]:
    return {name: query[name] for name in ITEM_FILTERS if query.get(name)}


async def items_page(page: Page) -> Response:
    envs = await run_in_threadpool(page.web.envs)
    filters = item_filters(page.request.query_params)
    error: str | None = None
    status = 200
    try:
        result = await page.run(TOOL, "list", query_params(ItemListQuery, filters))
    except ValidationFailed as exc:
        result, error, status = {"items": [], "next_cursor": None}, exc.message, 422
    today = page.web.runtime.clock.now().date().isoformat()
    next_href = None
    if result["next_cursor"]:
        next_href = views.items_url(**{**filters, "cursor": result["next_cursor"]})
    first_href = views.items_url(**{k: v for k, v in filters.items() if k != "cursor"}) if "cursor" in filters \
        else None
    return page.render(
        "items.html", status=status, envs=envs, env=filters.get("env"), filters=filters, items=result["items"],
        next_href=next_href, first_href=first_href, error=error, today=today, statuses=ALL_STATUSES,
        priorities=ALL_PRIORITIES, status_labels=views.STATUS_LABELS, columns=sort_columns(filters),
    )


SORTABLE = (("priority", "Pri"), ("due_date", "Due"), ("updated_at", "Updated"), ("created_at", "Created"))


def sort_columns(filters: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each sortable column's link (its own order, or the reverse when it is the current one) and
    its ``aria-sort`` state; the other filters are kept, the cursor is not (a new order starts over)."""
    current = filters.get("sort", "created_at")
    keep = {k: v for k, v in filters.items() if k not in ("sort", "cursor")}
    out = {}
    for key, label in SORTABLE:
        state = "ascending" if current == key else "descending" if current == f"-{key}" else "none"
        target = f"-{key}" if state == "ascending" else key
        out[key] = {"label": label, "href": views.items_url(**keep, sort=target), "state": state}
    return out


async def item_page(page: Page, *, error: str | None = None, status: int = 200) -> Response:
    """One item: fields, why it has its owner, evidence, the event timeline, and the write forms."""
    item_id = page.request.path_params["item_id"]
    item = await page.run(TOOL, "get", {"id": item_id})
    events = (await page.run(TOOL, "events", {"id": item_id}))["events"]
    meta = item.get("meta") or {}
    today = page.web.runtime.clock.now().date().isoformat()
    accepted = item.get("accepted")
    overdue = is_overdue(item["status"], item.get("due_date"), page.web.runtime.clock.now().date(), hold(accepted))
    notice = NOTICES.get(page.request.query_params.get("done", ""))
    closed = item["status"] in ("done", "canceled")
    return page.render(
        "item.html", status=status, item=item, events=[{**e, "detail": views.event_detail(e)} for e in events],
        evidence=evidence_links(item.get("evidence_refs") or [], meta.get("evidence_urls")),
        owner_reason=meta.get("owner_reason"), may_edit=page.may(TOOL, "set_owner") and not closed,
        closed=closed,
        weeks_open=views.weeks_open(item), carried_from=meta.get("carried_from"), meta_rest=views.meta_rest(meta),
        overdue=overdue, accepted=accepted, accepted_expired=bool(accepted) and accepted["until"] < today,
        status_label=views.STATUS_LABELS.get(item["status"], item["status"]),
        status_choices=views.status_choices(item["status"]), may_set_status=page.may(TOOL, "set_status"),
        may_comment=page.may(TOOL, "add_comment"), error=error, notice=notice, env=item["env"],
        tracker=views.tracker_link(item.get("tracker")),
    )
