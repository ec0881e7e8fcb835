"""Form posts: sign-in, sign-out, status change and comment.

Writes are protected three ways, each enough on its own against a cross-site form post:
``SameSite=Strict`` session cookies; a same-origin check on ``Origin`` and ``Sec-Fetch-Site``
when the browser sends them; and the session's CSRF token in every form that changes
something. Authorization is the action's own (``Page.run``): a read-only account's post is
refused 403 by the same guard that refuses its API call.

Form bodies are parsed here (URL-encoded, as browsers send them), so the web UI needs no
multipart dependency. After a write the browser is redirected (303) back to the item, so a
reload never posts twice.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.router.access.auth import MAX_KEY_LENGTH
from services.router.access.rbac import RbacConfig
from services.router.api.errors import status_for
from services.router.errors import AuthError, BacklogError, Conflict, Forbidden, RateLimited, ValidationFailed
from services.router.web.pages import TOOL, item_page
from services.router.web.rendering import Page, Web, html
from services.router.web.sessions import (
    SessionStore,
    clear_session_cookie,
    safe_next,
    session_id_of,
    set_session_cookie,
    transport_allows_sign_in,
)
from services.router.web.throttle import SignInThrottle

log = logging.getLogger("backlog.web")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 20
TLS_NEEDED = ("Sign-in needs HTTPS: serve the router behind TLS (a proxy sending X-Forwarded-Proto: https), "
              "or open it as http://127.0.0.1 on the machine it runs on.")
UNKNOWN_KEY = "That API key is not valid. Use the key of a service account from config/rbac.yml."


def same_origin(headers: Headers, scheme: str) -> bool:
    """A browser's own page posted this: ``Origin`` (when sent) names this host, and ``Sec-Fetch-Site``
    (when sent) says same-origin. Old clients that send neither still need the CSRF token."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    return origin is None or origin == f"{scheme}://{headers.get('host', '')}"


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded fields (first value of each); anything else is refused before it is read."""
    if not same_origin(request.headers, request.url.scheme):
        raise Forbidden("this form was posted from another site; open the page here and submit it again")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise ValidationFailed("expected a form post (application/x-www-form-urlencoded)", field="body")
    try:
        parsed = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
                          strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed("the form could not be read", field="body") from None
    return {name: values[0] for name, values in parsed.items()}


def check_csrf(page: Page, form: dict[str, str]) -> None:
    if not page.session.csrf_ok(form.get("csrf_token")):
        raise Forbidden("the form has expired or did not come from this page; reload the page and try again",
                        field="csrf_token")


# -- writes on an item ---------------------------------------------------------------------------
async def change_status(page: Page) -> Response:
    form = await read_form(page.request)
    check_csrf(page, form)
    item_id = page.request.path_params["item_id"]
    params = {"id": item_id, "status": form.get("status", ""), "message": form.get("message", "")}
    try:
        await page.run(TOOL, "set_status", params)
    except (ValidationFailed, Conflict) as exc:  # shown beside the form, which stays filled in
        return await item_page(page, error=exc.message, status=status_for(exc))
    return RedirectResponse(f"/items/{item_id}?done=status", status_code=303)


async def add_comment(page: Page) -> Response:
    form = await read_form(page.request)
    check_csrf(page, form)
    item_id = page.request.path_params["item_id"]
    try:
        await page.run(TOOL, "add_comment", {"id": item_id, "message": form.get("message", "")})
    except (ValidationFailed, Conflict) as exc:
        return await item_page(page, error=exc.message, status=status_for(exc))
    return RedirectResponse(f"/items/{item_id}?done=comment", status_code=303)


async def sign_out(page: Page) -> Response:
    form = await read_form(page.request)
    check_csrf(page, form)
    session_id = session_id_of(page.request.scope)
    if session_id:
        page.web.sessions.revoke(session_id)
    response = RedirectResponse("/login?signed_out=1", status_code=303)
    clear_session_cookie(response, page.request.scope)
    log.info("web sign-out account=%s", page.principal.name)
    return response


# -- sign-in (public) --------------------------------------------------------------------------------
class SignIn:
    """``GET``/``POST /login``: exchange an API key for a session; the key is never stored or logged.

    Only an account that may read the dashboard signs in: any other key (``alertmanager``'s) gets
    the unknown-key answer, since a session could do nothing but answer 403. Failures count
    against the client address's budget (``throttle``): past it, 429 with ``Retry-After``.
    """

    def __init__(self, web: Web, rbac: RbacConfig, sessions: SessionStore,
                 throttle: SignInThrottle | None = None) -> None:
        self.web = web
        self.rbac = rbac
        self.sessions = sessions
        self.throttle = throttle or SignInThrottle()
        self.entitlement = web.runtime.registry.get(TOOL, "dashboard").entitlement

    def form(self, request: Request, *, status: int = 200, error: str | None = None,
             next_path: str | None = None, headers: dict[str, str] | None = None) -> Response:
        context = {"account": None, "can_write": False, "csrf_token": "", "path": "/login", "error": error,
                   "next": safe_next(next_path or request.query_params.get("next")),
                   "signed_out": request.query_params.get("signed_out") == "1",
                   "insecure": not transport_allows_sign_in(request.scope), "tls_needed": TLS_NEEDED}
        return html(self.web.templates, "login.html", context, status=status, headers=headers)

    def refused(self, request: Request, exc: BacklogError, next_path: str,
                headers: dict[str, str] | None = None) -> Response:
        """The form again with the error, its status from the one error map like every other page's."""
        return self.form(request, status=status_for(exc), error=exc.message, next_path=next_path, headers=headers)

    async def get(self, request: Request) -> Response:
        session_id = session_id_of(request.scope)
        if session_id and self.sessions.get(session_id) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        return self.form(request)

    async def post(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except (Forbidden, ValidationFailed) as exc:
            return self.form(request, status=status_for(exc), error=exc.message)
        target = safe_next(form.get("next"))
        if not transport_allows_sign_in(request.scope):
            return self.refused(request, Forbidden(TLS_NEEDED), target)
        client = request.scope.get("client")
        address = str(client[0]) if client else "-"
        try:
            self.throttle.check(address)
        except RateLimited as exc:
            return self.refused(request, exc, target, headers={"Retry-After": str(exc.retry_after_seconds)})
        key = form.get("api_key", "").strip()
        account = self.rbac.identify(key) if 0 < len(key) <= MAX_KEY_LENGTH else None
        if account is None or not account.allows(self.entitlement):
            self.throttle.failed(address)
            log.info("web sign-in refused: %s", "unknown key" if account is None
                     else f"account {account.name} lacks {self.entitlement}")
            return self.refused(request, AuthError(UNKNOWN_KEY), target)
        old = session_id_of(request.scope)
        if old:
            self.sessions.revoke(old)  # never keep a session id from before sign-in (fixation)
        session_id, _ = self.sessions.create(account)
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(response, request.scope, session_id, max_age=int(self.sessions.absolute_seconds))
        log.info("web sign-in account=%s", account.name)
        return response
