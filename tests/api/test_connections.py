"""``backlog serve``'s connection limits against the real server on loopback (issue 23, item 4).

Silent and slow-header connections are closed after ``BACKLOG_HEADER_TIMEOUT_SECONDS``; at
``BACKLOG_MAX_CONNECTIONS`` the oldest idle connection makes room, and only when every
connection has a request in flight is a new one refused with 503.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import KEYS, REPO
from tests.pg_support import free_port

SERVE = "import sys; from services.router.cli import main; sys.argv[0] = 'backlog'; main()"


@contextmanager
def served(tmp_path: Path, **settings: str) -> Iterator[str]:
    """``backlog serve`` on a free loopback port (memory backend), its output in ``server.log``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_") and not k.endswith("_API_KEY")}
    env.update({"PYTHONPATH": str(REPO), "REPO_ROOT": str(REPO), "BACKLOG_BACKEND": "memory",
                "BACKLOG_STATE_DIR": str(tmp_path / "state"), "BACKLOG_REPORTS_DIR": str(tmp_path / "reports"),
                "BACKLOG_ADMIN_API_KEY": KEYS["admin"], **settings})
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    pattern = r'backlog_http_connections_closed_total\{reason="(\w+)"\} (\S+)'
    return {reason: float(count) for reason, count in re.findall(pattern, text)}


def read_until_closed(sock: socket.socket, *, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def recv_response(sock: socket.socket) -> bytes:
    """One ``/healthz`` response (its body ends the read)."""
    sock.settimeout(5)
    data = b""
    while not data.endswith(b'"ok"}'):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def timed_get(url: str, path: str = "/healthz") -> tuple[int, float]:
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:  # a new connection each time
        status = client.get(f"{url}{path}").status_code
    return status, time.monotonic() - started


def test_a_thousand_silent_connections_do_not_stop_requests(tmp_path: Path) -> None:
    """The defaults (cap 1000, header deadline 10 s): 1,000 connections that send nothing are held,
    and requests on new connections are still served within a second each."""
    with served(tmp_path) as url, ExitStack() as stack:
        silent = [stack.enter_context(connect(url)) for _ in range(1000)]
        time.sleep(0.5)  # let the server accept them all
        answers = [timed_get(url) for _ in range(5)]
        assert [status for status, _ in answers] == [200] * 5
        assert max(seconds for _, seconds in answers) < 1.0, answers
        assert closed_counts(url)["evicted_idle"] == 1  # the cap was reached: the oldest silent one made room
        assert len(silent) == 1000


def test_connections_without_complete_headers_are_closed_after_the_deadline(tmp_path: Path) -> None:
    with served(tmp_path, BACKLOG_HEADER_TIMEOUT_SECONDS="1") as url:
        silent = connect(url)
        slow = connect(url)
        kept_alive = connect(url)
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_response(kept_alive).startswith(b"HTTP/1.1 200")
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next request, never finished
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(3):  # a header byte now and then does not keep it open
            time.sleep(0.3)
            slow.sendall(b"X")
        for sock in (silent, slow, kept_alive):
            answer = read_until_closed(sock, timeout=5)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()
        assert time.monotonic() - started < 4
        assert timed_get(url)[0] == 200
        assert closed_counts(url)["header_timeout"] == 3
        assert "sent no complete request headers in time" in (tmp_path / "server.log").read_text()


def test_at_the_cap_the_oldest_idle_connection_makes_room_else_503(tmp_path: Path) -> None:
    with served(tmp_path, BACKLOG_MAX_CONNECTIONS="5") as url, ExitStack() as stack:
        idle = [stack.enter_context(connect(url)) for _ in range(5)]
        time.sleep(0.2)
        assert timed_get(url)[0] == 200  # room made: the oldest idle connection was closed
        assert read_until_closed(idle[0], timeout=5) == b""
        busy = []
        request = (f"POST /v1/backlog/items HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEYS['admin']}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{").encode()
        for _ in range(5):  # every connection with a request in flight (its body still coming)
            sock = stack.enter_context(connect(url))
            sock.sendall(request)
            busy.append(sock)
        time.sleep(0.3)
        refused = connect(url)
        answer = read_until_closed(refused, timeout=5)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in answer.lower(), answer
        for sock in busy:
            sock.close()
        time.sleep(0.3)
        assert timed_get(url)[0] == 200
        counts = closed_counts(url)
        assert counts["refused_at_cap"] == 1 and counts["evicted_idle"] >= 5
        log = (tmp_path / "server.log").read_text()
        assert "refused new connection(s) at the connection cap" in log


@pytest.mark.parametrize(("name", "value"), [("BACKLOG_HEADER_TIMEOUT_SECONDS", "0"),
                                             ("BACKLOG_MAX_CONNECTIONS", "0"), ("BACKLOG_MAX_CONNECTIONS", "ten")])
def test_bad_limits_are_refused_at_start(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from services.router.settings import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()
