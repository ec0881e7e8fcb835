"""The HTTP plumbing every adapter shares: one httpx client, the token, and error classification.

One ``httpx.Client`` per adapter (connection reuse, explicit timeouts, no redirects followed: a
tracker that redirects its API is misconfigured, and a redirect to a login page must not look
like success). The token is read from the environment variable ``token_env`` names on every
request (:class:`EnvTokenAuth`), so rotating it needs no restart and no object holds it.

Classification is the whole contract with the outbox (see :mod:`.errors`): a status code and
the tracker's own error text become a retryable, rate-limited or permanent error with a reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from services.router.clock import Clock, SystemClock, iso_z
from services.router.trackers.config import TrackerConfig
from services.router.trackers.errors import (
    DEFAULT_RATE_LIMIT_SECONDS,
    TrackerError,
    TrackerPermanent,
    TrackerRateLimited,
    TrackerRetryable,
    retry_after_seconds,
    scrub,
)

# httpcore's DEBUG trace prints every response's raw headers, and a tracker (or a proxy before it)
# may echo the token it was sent in one: found by the secrets canary with BACKLOG_LOG_LEVEL=DEBUG.
# Its trace is for debugging httpcore itself; our requests are logged by what they did.
logging.getLogger("httpcore").setLevel(logging.INFO)

USER_AGENT = "backlog-bridge/0.1 (+tracker sync)"
DEFAULT_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_PAGES = 20  # per call: a pull that finds more says ``more`` and continues on the next call

HeaderFor = Callable[[str], dict[str, str]]


class EnvTokenAuth(httpx.Auth):
    """Adds the tracker's auth header from the environment at request time.

    ``header_for`` turns the token into headers (``X-Redmine-API-Key``, ``PRIVATE-TOKEN``,
    ``Authorization``). An unset or empty variable is a permanent ``auth`` error naming the
    variable, never the value.
    """

    def __init__(self, tracker: str, env_name: str, header_for: HeaderFor, environ: Mapping[str, str]) -> None:
        self._tracker = tracker
        self._env_name = env_name
        self._header_for = header_for
        self._environ = environ

    def token(self) -> str:
        value = self._environ.get(self._env_name, "")
        if not value:
            raise TrackerPermanent(self._tracker, f"environment variable {self._env_name} (token_env) is not set",
                                   kind="auth")
        return value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._header_for(self.token()))
        yield request

    def __repr__(self) -> str:
        return f"EnvTokenAuth({self._env_name})"


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing: every request is authenticated by the token alone.

    Why: a tracker's session cookie (Redmine's ``_redmine_session``, Jira's ``JSESSIONID``) is
    state the sync never needs, and keeping it cost the client about a millisecond of CPU per
    request (parsing ``Set-Cookie``, then copying the jar into every request's ``Cookie``).
    """

    def extract_cookies(self, response: object, request: object) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class HttpAdapter:
    """Base of the four adapters: requests, JSON and classification; subclasses translate."""

    kind = "http"
    observer: Callable[[str], None] | None = None

    def __init__(
        self,
        name: str,
        config: TrackerConfig,
        *,
        base_url: str,
        header_for: HeaderFor,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._auth = EnvTokenAuth(name, config.token_env, header_for, os.environ if environ is None else environ)
        self._client = httpx.Client(
            base_url=base_url,
            auth=self._auth,
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            follow_redirects=False,
            cookies=NoCookies(),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self.config.url!r})"

    def close(self) -> None:
        self._client.close()

    # -- requests ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> httpx.Response:
        """One request; any answer but 2xx raises the classified :class:`TrackerError`.

        ``observer`` (set by the sync engine) hears each request's outcome: ``ok``, ``retryable``,
        ``rate_limited`` or ``refused`` (``backlog_tracker_requests_total``).
        """
        try:
            response = self._send(method, path, params=params, json=json)
        except TrackerError as exc:
            if self.observer is not None:
                self.observer(outcome_of(exc))
            raise
        if self.observer is not None:
            self.observer("ok")
        return response

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None, json: Any) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = self._client.request(method, path, params=params, json=json)
        except TrackerError:
            raise
        except httpx.TimeoutException as exc:
            raise TrackerRetryable(self.name, f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.RequestError as exc:  # connection, protocol, decoding: the request may not have landed
            raise TrackerRetryable(self.name, f"{what}: {type(exc).__name__}: {self._scrub(str(exc))}") from None
        if response.is_success:
            return response
        raise self.classify(response, what)

    def json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """The decoded JSON of a 2xx answer (an answer that is not JSON is retryable: a proxy's page)."""
        response = self.request(method, path, params=params, json=json)
        return self.decode(response, f"{method} {path}")

    def decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise TrackerRetryable(self.name, f"{what}: answered {response.status_code} with {kind}, not JSON",
                                   status=response.status_code) from None

    # -- classification ---------------------------------------------------------------------

    def classify(self, response: httpx.Response, what: str) -> TrackerError:
        """Status code (+ headers and body) → the error the outbox acts on."""
        status = response.status_code
        text = self.error_text(response)
        reason = f"{what} → {status} {response.reason_phrase}" + (f": {text}" if text else "")
        if status == 429:
            return self.rate_limited(response, reason)
        if 300 <= status < 400:
            where = response.headers.get("location", "elsewhere")
            return TrackerPermanent(self.name, f"{reason}; redirected to {where}: set url to the API base",
                                    kind="config", status=status)
        if status == 401:
            return TrackerPermanent(self.name, f"{reason} (check the token in {self.config.token_env})",
                                    kind="auth", status=status)
        if status == 403:
            return TrackerPermanent(self.name, f"{reason} (the token lacks permission)", kind="auth", status=status)
        if status in (404, 410):
            return TrackerPermanent(self.name, reason, kind="not_found", status=status)
        if status in (408, 409, 423, 425):  # timeouts, edit conflicts, locks: transient by definition
            return TrackerRetryable(self.name, reason, status=status)
        if 400 <= status < 500:
            return TrackerPermanent(self.name, reason, kind="rejected", status=status)
        if retry_after_seconds(response.headers, self.clock.now()) is not None:
            return self.rate_limited(response, reason)  # 503 + Retry-After: maintenance, wait as told
        return TrackerRetryable(self.name, reason, status=status)

    def rate_limited(self, response: httpx.Response, reason: str) -> TrackerRateLimited:
        wait = retry_after_seconds(response.headers, self.clock.now())
        return TrackerRateLimited(self.name, reason, status=response.status_code,
                                  retry_after_seconds=DEFAULT_RATE_LIMIT_SECONDS if wait is None else wait)

    def error_text(self, response: httpx.Response) -> str:
        """The tracker's own words about the error, whatever shape its JSON has."""
        try:
            body = response.json()
        except ValueError:
            return ""
        return self._scrub(describe_error_body(body))

    def _scrub(self, text: str) -> str:
        try:
            token = self._auth.token()
        except TrackerPermanent:
            return text
        return scrub(text, (token, *token.split(":", 1)) if ":" in token else (token,))


def outcome_of(error: TrackerError) -> str:
    """The request outcome a failure counts as (the label of ``backlog_tracker_requests_total``)."""
    if isinstance(error, TrackerRateLimited):
        return "rate_limited"
    if isinstance(error, TrackerRetryable):
        return "retryable"
    return "refused"


def iso_seconds(at: datetime) -> str:
    """``2026-11-23T06:00:02Z``: the whole-second UTC form every tracker's filter accepts
    (rounded down, so a query never starts after the moment it was asked for)."""
    return iso_z(at).split(".")[0] + "Z"


def describe_error_body(body: Any) -> str:
    """Redmine ``{"errors": [..]}``, GitHub ``{"message", "errors": [{..}]}``, GitLab
    ``{"message": ..|{field: [..]}}`` or ``{"error"}``, Jira ``{"errorMessages", "errors": {..}}``."""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for key in ("message", "error", "error_description"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            parts.extend(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items())
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(str(m) for m in messages)
    errors = body.get("errors")
    if isinstance(errors, list):
        for err in errors:
            if isinstance(err, dict):
                parts.append(" ".join(str(err[k]) for k in ("resource", "field", "code", "message") if k in err))
            else:
                parts.append(str(err))
    elif isinstance(errors, dict):
        parts.extend(f"{k}: {v}" for k, v in errors.items())
    return "; ".join(p for p in parts if p)
