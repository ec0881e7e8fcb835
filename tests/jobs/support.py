"""Shared by the governance-job tests: the real router on loopback and the runner as cron runs it."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "ops" / "scripts" / "run_governance_job.py"
RBAC_FILE = REPO / "config" / "rbac.yml"
KEYS: dict[str, str] = {name: secrets.token_urlsafe(32) for name in ("scheduler", "readonly", "admin")}


@contextmanager
def live_router(runtime: Any) -> Iterator[str]:
    """The real FastAPI app under uvicorn, in a thread, on a free 127.0.0.1 port."""
    import uvicorn

    from services.router.access.rbac import RbacConfig, read_accounts
    from services.router.app import create_app

    rbac = RbacConfig(read_accounts(RBAC_FILE), KEYS, source=str(RBAC_FILE))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(runtime, rbac), log_level="warning", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the router did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunnerResult:
    code: int
    out: str
    err: str

    @property
    def result(self) -> Any:
        """The result JSON: everything after the log line."""
        import json

        return json.loads(self.out.split("\n", 1)[1])


def run_runner(*args: str, key: str | None = KEYS["scheduler"], env: Mapping[str, str] | None = None,
               fast_retries: bool = True) -> RunnerResult:
    """The runner as cron runs it: its own process, standard library only (``-I -S``: no site-packages)."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
    if key is not None:
        environ["SCHEDULER_API_KEY"] = key
    environ.update(env or {})
    extra = ["--retry-backoff", "0.01", "--retry-max-wait", "0.05"] if fast_retries else []
    done = subprocess.run([sys.executable, "-I", "-S", str(RUNNER), *args, *extra], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)
    return RunnerResult(done.returncode, done.stdout, done.stderr)
