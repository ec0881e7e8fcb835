"""The web dashboard behind an authenticating proxy (oauth2-proxy's convention).

With ``web:`` in ``config/rbac.yml``, a page request whose peer address is in
``web.trusted_proxies`` and that carries ``web.trusted_user_header`` (``X-Forwarded-Email``) is
signed in as ``web.proxy_account`` on behalf of the person the header names — no API key, no
sign-in form, no cookie: the proxy authenticates every request. Everything that person does
is written with ``actor`` the account and ``on_behalf_of`` the person (``access.delegation``).

The header from any other address is ignored (the request falls back to its cookie session, if
any) and logged — at most once a minute per address, so a client sending it on every request
cannot flood the log. A value that is not an email address or a slug is refused the same way.

Forms still carry a CSRF token: one derived from the person and a random secret of this
process (HMAC), so it needs no stored session and a restart only asks for a reload.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import Scope

from services.router.access.delegation import person_problem
from services.router.access.rbac import RbacConfig
from services.router.web.sessions import Session

log = logging.getLogger("backlog.web")
LOG_EVERY_SECONDS = 60.0
MAX_REMEMBERED = 1024


class ProxyAuth:
    """Signs in requests from the configured proxies (``authenticate``), None when not one."""

    def __init__(self, rbac: RbacConfig, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = rbac.web
        self.account = rbac.account(self.config.proxy_account) if self.config is not None else None
        self._secret = secrets.token_bytes(32)
        self._logged: dict[str, float] = {}
        self._monotonic = monotonic

    def session(self, scope: Scope) -> Session | None:
        if self.config is None or self.account is None:
            return None
        header = self.config.trusted_user_header
        value = Headers(scope=scope).get(header.lower())
        if value is None:
            return None
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if not self.config.trusts(address):
            self._ignored(address, f"{header} from {address} ignored: not one of web.trusted_proxies")
            return None
        person = value.strip()
        problem = person_problem(person)
        if problem is not None:
            self._ignored(address, f"{header} from the proxy at {address} ignored: the value {problem}")
            return None
        token = hmac.new(self._secret, f"{self.account.name}\0{person}".encode(), hashlib.sha256).hexdigest()
        now = self._monotonic()
        return Session(self.account.name, self.account.entitlements, token, now, now, on_behalf_of=person)

    def _ignored(self, address: str, message: str) -> None:
        now = self._monotonic()
        last = self._logged.get(address)
        if last is not None and now - last < LOG_EVERY_SECONDS:
            return
        if len(self._logged) >= MAX_REMEMBERED:
            self._logged.clear()
        self._logged[address] = now
        log.warning("%s", message)
