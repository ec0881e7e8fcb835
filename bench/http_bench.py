"""The router over HTTP against a bare route in the same server (issue 10), driven by wrk.

The server is the real app (``create_app``: auth, RBAC, middleware, the JSONL store) under
uvicorn with one worker, on 127.0.0.1 only; the bench adds one bare route returning orjson
bytes, behind the same middleware. wrk (Debian's ``wrk``: ``apt-get install -y wrk``) runs with
one thread and 50 connections for a fixed duration, so the load stops by itself.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import Report, Row, ratio_row
from bench.datagen import write_backlog

CONNECTIONS = 50
BARE_PATH = "/__bench/bare"
KEY_ENV = "READONLY_API_KEY"

SERVER = """
import sys
import orjson
import uvicorn
from starlette.responses import Response
from services.router.app.factory import create_app
from services.router.cli.serve import server_options, warm_up

app = create_app()
store = app.state.runtime.store
sample = store.get(sys.argv[2])
body = {"item": sample}
warm_up(app.state.runtime)  # what `backlog serve` does before serving

@app.get("__BARE__", include_in_schema=False)
async def bare() -> Response:  # async, like the routes it is compared with: no thread-pool hop
    return Response(orjson.dumps(body), media_type="application/json")

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, access_log=False, log_level="warning",
            **server_options(app.state.runtime.settings))  # as `backlog serve` runs it
""".replace("__BARE__", BARE_PATH)

LUA_PATHS = """
local paths = {}
for line in io.lines("__FILE__") do paths[#paths + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, key: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"http://127.0.0.1:{port}{BARE_PATH}", headers={"X-API-Key": key})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("bench server did not become ready")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx + socket errors) from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * UNITS[p99.group(2)] if p99 else float("inf")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    return rps, p99_ms, errors


def wrk(url: str, key: str, seconds: float, script: Path | None = None) -> tuple[float, float, int]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s",
           "-H", f"X-API-Key: {key}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out)


def run(report: Report, *, items: int, seconds: float, rounds: int) -> None:
    if shutil.which("wrk") is None:
        report.add(Row("HTTP benches", 0.0, None, "-", "wrk installed", False, "apt-get install -y wrk"))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        data = work / "backlog"
        write_backlog(data, items=items, versions=2)
        ids = []
        with open(data / "items.jsonl", "rb") as fh:
            for n, line in enumerate(fh):
                if n % max(1, (2 * items) // 1000) == 0:
                    ids.append(line[7:line.index(b'"', 7)].decode())  # after '{"id":"'
        paths = work / "paths.txt"
        paths.write_text("".join(f"/v1/backlog/items/{i}\n" for i in ids))
        script = work / "paths.lua"
        script.write_text(LUA_PATHS.replace("__FILE__", str(paths)).replace("%%", "%"))
        key = secrets.token_urlsafe(24)
        port = free_port()
        env = {**os.environ, "BACKLOG_BACKEND": "jsonl", "BACKLOG_JSONL_DIR": str(data), KEY_ENV: key,
               "BACKLOG_STATE_DIR": str(work / "state"), "BACKLOG_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), ids[0]], env=env,
                                  cwd=Path(__file__).resolve().parents[1])
        wait_ready(port, key)
        base = f"http://127.0.0.1:{port}"
        wrk(f"{base}{BARE_PATH}", key, 1)  # warm up
        results: dict[str, list[tuple[float, float, int]]] = {"bare": [], "item": [], "dashboard": []}
        for _ in range(rounds):
            results["bare"].append(wrk(f"{base}{BARE_PATH}", key, seconds))
            results["item"].append(wrk(f"{base}/v1/backlog/items/{ids[0]}", key, seconds, script))
            results["dashboard"].append(wrk(f"{base}/v1/backlog/dashboard?env=prod", key, seconds))
        med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
        p99 = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
        errors = {k: sum(r[2] for r in v) for k, v in results.items()}
        report.machine["speed_gauge_bare_rps"] = round(med["bare"])  # printed with the table
        bad = {k: n for k, n in errors.items() if n}
        note = f"errors {bad}" if bad else ""
        report.add(ratio_row(f"HTTP GET item, 1 worker, {CONNECTIONS} conns (req/s)", med["item"], med["bare"],
                             goal_ratio=0.5, unit="req/s", higher_is_better=True, note=note))
        # A goal in milliseconds measures the machine; the bare route's p99 in the same run is the floor.
        p99_row = ratio_row(f"HTTP GET item p99 vs the bare route's p99 (ms; bare {med['bare']:.0f} req/s)",
                            p99["item"], p99["bare"], goal_ratio=1.5, unit="ms", note=note)
        p99_row.ok = p99_row.ok and not errors["item"]
        report.add(p99_row)
        report.add(ratio_row(f"HTTP dashboard, JSONL {items} items (req/s)", med["dashboard"], med["bare"],
                             goal_ratio=0.25, unit="req/s", higher_is_better=True, note=note))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
