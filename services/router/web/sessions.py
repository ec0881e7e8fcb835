"""Web sign-in: an API key is exchanged once for an opaque, server-side session.

Why server-side and not a signed token: the cookie then carries only a random id, never the key
or anything derived from it; sign-out revokes the session at once; and no signing secret needs
to be configured, rotated or kept out of the repo. The cost is that sessions live in this
process's memory: a restart signs everyone out, and the router must run as one process (as
``backlog serve`` does). Only a SHA-256 digest of each session id is kept, so a memory dump
does not yield live cookies.

The cookie is ``HttpOnly`` and ``SameSite=Strict``; over HTTPS it is ``Secure`` and named with
the ``__Host-`` prefix (no ``Domain``, ``Path=/``), so a sibling subdomain cannot plant one.
Plain HTTP is accepted only when both ends are loopback (``http://127.0.0.1:8000`` for local
use); anywhere else sign-in is refused until the router is served over HTTPS (behind a TLS
proxy, uvicorn's ``--proxy-headers`` turns ``X-Forwarded-Proto: https`` into an https scope).

Each session carries a CSRF token (synchronizer pattern): every form that changes something
posts it back and it is compared in constant time. Sessions expire after ``IDLE_SECONDS``
without a request and ``ABSOLUTE_SECONDS`` after sign-in, whichever comes first.

Sessions are capped per account (``MAX_SESSIONS_PER_ACCOUNT``): an account signing in once more
at its cap ends its own least recently used session, and when the store as a whole is full the
account holding the most sessions gives one up — so one key holder signing in over and over
cannot sign every other user out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Scope

from services.router.access.auth import Principal, path_kind
from services.router.access.rbac import ServiceAccount
from services.router.api.errors import status_for
from services.router.errors import AuthError

COOKIE = "backlog_session"
SECURE_COOKIE = "__Host-backlog_session"
IDLE_SECONDS = 12 * 3600  # a wall screen refreshes every minute, so only abandoned tabs hit this
ABSOLUTE_SECONDS = 7 * 24 * 3600
MAX_SESSIONS = 10_000
MAX_SESSIONS_PER_ACCOUNT = 100  # accounts are shared by a team (wall screens, laptops): room for each
SESSION_STATE = "web_session"
LOOPBACK_NAMES = frozenset({"localhost"})
SESSION_EXPIRED = "Your session has expired or you are not signed in. Sign in again at /login."


@dataclass
class Session:
    account: str
    entitlements: frozenset[str]
    csrf_token: str
    created: float
    last_seen: float

    @property
    def principal(self) -> Principal:
        return Principal(self.account, self.entitlements)

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf_token.encode())


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions by id digest; expired ones are dropped when met and on every sign-in."""

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS, absolute_seconds: float = ABSOLUTE_SECONDS,
                 max_sessions: int = MAX_SESSIONS, max_sessions_per_account: int = MAX_SESSIONS_PER_ACCOUNT,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self.max_sessions = max_sessions
        self.max_sessions_per_account = max_sessions_per_account
        self.monotonic = monotonic
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_seconds or now - session.created > self.absolute_seconds

    def create(self, account: ServiceAccount) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        now = self.monotonic()
        session = Session(account.name, account.entitlements, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._prune(now)
            if self.count(account.name) >= self.max_sessions_per_account:
                self._evict_oldest_of(account.name)
            if len(self._sessions) >= self.max_sessions:
                counts = Counter(s.account for s in self._sessions.values())
                self._evict_oldest_of(max(counts, key=lambda name: counts[name]))
            self._sessions[digest(session_id)] = session
        return session_id, session

    def count(self, account: str) -> int:
        return sum(1 for s in self._sessions.values() if s.account == account)

    def _evict_oldest_of(self, account: str) -> None:
        """End ``account``'s least recently used session (the caller holds the lock)."""
        mine = [k for k, s in self._sessions.items() if s.account == account]
        if mine:
            del self._sessions[min(mine, key=lambda k: self._sessions[k].last_seen)]

    def get(self, session_id: str) -> Session | None:
        key = digest(session_id)
        now = self.monotonic()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self.expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(digest(session_id), None)

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self.expired(s, now)]:
            del self._sessions[key]


# -- transport and cookies -------------------------------------------------------------------------
def is_https(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


def is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_allows_sign_in(scope: Scope) -> bool:
    """HTTPS, or plain HTTP with both the listening socket and the client on loopback."""
    if is_https(scope):
        return True
    server, client = scope.get("server"), scope.get("client")
    return bool(server and client and is_loopback(server[0]) and is_loopback(client[0]))


def cookie_name(scope: Scope) -> str:
    return SECURE_COOKIE if is_https(scope) else COOKIE


def session_id_of(scope: Scope) -> str | None:
    raw = Headers(scope=scope).get("cookie")
    if not raw:
        return None
    value = cookie_parser(raw).get(cookie_name(scope))
    return value if value and len(value) <= 128 else None


def set_session_cookie(response: Response, scope: Scope, session_id: str, *, max_age: int) -> None:
    response.set_cookie(cookie_name(scope), session_id, max_age=max_age, path="/", secure=is_https(scope),
                        httponly=True, samesite="strict")


def clear_session_cookie(response: Response, scope: Scope) -> None:
    response.delete_cookie(cookie_name(scope), path="/", secure=is_https(scope), httponly=True, samesite="strict")


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a web page path of this site, never another origin."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    path = target.split("?", 1)[0]
    return target if path_kind(path) == "web-session" and path != "/logout" else "/"


class WebSessions:
    """The ``SessionAuth`` the auth middleware calls for web pages; also stashes the session."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def authenticate(self, scope: Scope) -> Principal | None:
        session_id = session_id_of(scope)
        session = self.store.get(session_id) if session_id else None
        if session is None:
            return None
        scope.setdefault("state", {})[SESSION_STATE] = session
        return session.principal

    def sign_in_required(self, scope: Scope) -> ASGIApp:
        """Pages redirect to sign-in (and back afterwards); a form post without a session is a 401."""
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        back = quote(f"{path}?{query}" if query else path, safe="")
        if scope.get("method") in ("GET", "HEAD"):
            return RedirectResponse(f"/login?next={back}", status_code=303)
        expired = AuthError(SESSION_EXPIRED)
        return Response(expired.message, status_code=status_for(expired), media_type="text/plain; charset=utf-8")


def current_session(scope: Scope) -> Session:
    session = scope.get("state", {}).get(SESSION_STATE)
    if not isinstance(session, Session):
        raise RuntimeError("web page reached without a session (the auth middleware should have stopped it)")
    return session
