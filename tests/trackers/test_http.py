"""What every adapter shares: how answers and transport failures are classified, how long a
rate limit says to wait, and that the token never shows (errors, reprs, logs)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from services.router.clock import FixedClock
from services.router.trackers import TrackerPermanent, TrackerRateLimited, TrackerRetryable, build_adapter
from services.router.trackers.errors import retry_after_seconds
from tests.trackers import fake_github
from tests.trackers.conftest import TOKEN_ENV, config
from tests.trackers.fake_github import FakeGitHub

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "acme/platform#1"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Retry-After": "120"}, 120.0),
    ({"retry-after": " 5 "}, 5.0),
    ({"Retry-After": "Thu, 26 Nov 2026 12:01:30 GMT"}, 90.0),
    ({"Retry-After": "Thu, 26 Nov 2026 11:00:00 GMT"}, 0.0),  # a date in the past: go now
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW.timestamp()) + 42)}, 42.0),
    ({"RateLimit-Reset": str(int(NOW.timestamp()) + 3)}, 3.0),  # GitLab
    ({"X-RateLimit-Reset": "2026-11-26T12:00:10Z"}, 10.0),  # Jira Cloud
    ({"x-ratelimit-remaining": "17", "x-ratelimit-reset": "1900000000"}, None),  # a reset alone is no limit
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after_reads_the_headers_trackers_send(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, NOW) == expected


def github(fake: FakeGitHub, token: str = fake_github.TOKEN, **kwargs: object) -> object:
    cfg = config("github", fake_github.API, "acme/platform")
    return build_adapter("gh", cfg, transport=fake.transport(), environ={TOKEN_ENV: token},
                         clock=FixedClock(NOW), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> FakeGitHub:
    made = FakeGitHub()
    made.handle(httpx.Request("POST", f"{fake_github.API}/repos/acme/platform/issues",
                              headers={"authorization": f"Bearer {fake_github.TOKEN}"}, json={"title": "one"}))
    return made


def test_github_rate_limits_are_told_apart_from_permission_refusals(fake: FakeGitHub) -> None:
    adapter = github(fake)
    fake.secondary_rate_limit(retry_after=30)
    with pytest.raises(TrackerRateLimited) as told:
        adapter.get(KEY)  # type: ignore[attr-defined]
    assert (told.value.status, told.value.retry_after_seconds) == (403, 30)
    fake.secondary_rate_limit()  # no header: GitHub says wait at least a minute
    with pytest.raises(TrackerRateLimited) as untold:
        adapter.get(KEY)  # type: ignore[attr-defined]
    assert untold.value.retry_after_seconds == 60
    fake.primary_rate_limit(reset_epoch=int(NOW.timestamp()) + 900)
    with pytest.raises(TrackerRateLimited) as primary:
        adapter.get(KEY)  # type: ignore[attr-defined]
    assert primary.value.retry_after_seconds == 900
    fake.faults.next(429, headers={"retry-after": "2"}, body={"message": "too many"})
    with pytest.raises(TrackerRateLimited):
        adapter.get(KEY)  # type: ignore[attr-defined]
    fake.faults.next(403, body={"message": "Resource not accessible by personal access token"})
    with pytest.raises(TrackerPermanent) as forbidden:
        adapter.get(KEY)  # type: ignore[attr-defined]
    assert forbidden.value.kind == "auth" and "not accessible" in forbidden.value.reason


@pytest.mark.parametrize(("status", "body", "headers", "kind", "error"), [
    (503, None, {"Retry-After": "30"}, None, TrackerRateLimited),  # maintenance: wait as told
    (504, None, {}, None, TrackerRetryable),
    (409, {"message": "conflict"}, {}, None, TrackerRetryable),
    (410, {"message": "Issues are disabled"}, {}, "not_found", TrackerPermanent),
    (400, {"message": "Problems parsing JSON"}, {}, "rejected", TrackerPermanent),
    (301, None, {"location": "https://api.github.com/repositories/1"}, "config", TrackerPermanent),
    (200, "<html>sign in</html>", {}, None, TrackerRetryable),  # a login page is not an answer
])
def test_other_answers_are_classified(fake: FakeGitHub, status: int, body: object, headers: dict[str, str],
                                      kind: str | None, error: type[Exception]) -> None:
    fake.faults.next(status, body=body, headers=headers)
    with pytest.raises(error) as caught:
        github(fake).get(KEY)  # type: ignore[attr-defined]
    assert type(caught.value) is error
    if kind is not None:
        assert caught.value.kind == kind  # type: ignore[attr-defined]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_timeouts_and_refused_connections_are_retryable(silent_server: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    for port, words in ((silent_server, "timed out"), (closed_port, "ConnectError")):
        cfg = config("gitlab", f"http://127.0.0.1:{port}", "acme/platform")
        adapter = build_adapter("gl", cfg, environ={TOKEN_ENV: "t"}, timeout_seconds=0.3)
        with pytest.raises(TrackerRetryable) as caught:
            adapter.get("acme/platform#1")
        assert words in caught.value.reason and caught.value.status is None
        adapter.close()


def test_the_token_is_in_no_error_repr_or_log_line(fake: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    canary = fake_github.TOKEN
    caplog.set_level(logging.DEBUG)
    adapter = github(fake)
    fake.faults.next(500, body={"message": f"echoing your header: Bearer {canary}"})
    with pytest.raises(TrackerRetryable) as echoed:
        adapter.get(KEY)  # type: ignore[attr-defined]
    wrong = github(fake, token=canary + "-revoked")
    with pytest.raises(TrackerPermanent) as refused:
        wrong.get(KEY)  # type: ignore[attr-defined]
    issue = adapter.get(KEY)  # type: ignore[attr-defined]
    shown = [str(echoed.value), echoed.value.reason, str(refused.value), repr(adapter), repr(wrong), repr(issue),
             repr(adapter.config), repr(adapter._auth), caplog.text]  # type: ignore[attr-defined]
    assert "echoing your header: Bearer ***" in echoed.value.reason
    assert all(canary not in text for text in shown)


def test_a_session_cookie_is_never_kept_every_request_carries_the_token(fake: FakeGitHub) -> None:
    """Trackers set session cookies (Redmine, Jira); the adapters keep none (``http.NoCookies``)."""
    sent: list[httpx.Request] = []

    def with_cookie(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = fake.handle(request)
        answer.headers["set-cookie"] = "_session=abc123; path=/"
        return answer

    cfg = config("github", fake_github.API, "acme/platform")
    adapter = build_adapter("gh", cfg, transport=httpx.MockTransport(with_cookie),
                            environ={TOKEN_ENV: fake_github.TOKEN}, clock=FixedClock(NOW))
    for _ in range(2):
        adapter.get(KEY)  # type: ignore[attr-defined]
    assert len(sent) == 2
    assert all("cookie" not in r.headers for r in sent)
    assert all(r.headers["authorization"] == f"Bearer {fake_github.TOKEN}" for r in sent)
