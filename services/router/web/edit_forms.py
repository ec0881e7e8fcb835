"""Form posts that edit an item's owner and due date (``backlog_tool.set_owner`` / ``set_due_date``).

The same protections as every other form (``forms.read_form``: same origin, URL-encoded body;
the session's CSRF token) and the same authorization: the action's own entitlement, so a
read-only session's post is refused 403. A refused edit (a closed item, a bad value) is shown
beside the form; a done one redirects back to the item (303), so a reload never posts twice.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from services.router.api.errors import status_for
from services.router.errors import Conflict, ValidationFailed
from services.router.web.forms import check_csrf, read_form
from services.router.web.pages import TOOL, item_page
from services.router.web.rendering import Page


async def change_owner(page: Page) -> Response:
    form = await read_form(page.request)
    check_csrf(page, form)
    item_id = page.request.path_params["item_id"]
    params = {"id": item_id, "owner": form.get("owner", "").strip(), "message": form.get("message", "")}
    return await _run(page, "set_owner", params, "owner")


async def change_due_date(page: Page) -> Response:
    form = await read_form(page.request)
    check_csrf(page, form)
    item_id = page.request.path_params["item_id"]
    day = form.get("due_date", "").strip()
    params = {"id": item_id, "due_date": day or None, "message": form.get("message", "")}
    return await _run(page, "set_due_date", params, "due_date")


async def _run(page: Page, action: str, params: dict[str, Any], done: str) -> Response:
    try:
        await page.run(TOOL, action, params)
    except (ValidationFailed, Conflict) as exc:  # shown beside the form
        return await item_page(page, error=exc.message, status=status_for(exc))
    return RedirectResponse(f"/items/{params['id']}?done={done}", status_code=303)
