"""The secrets canary's tracker part: planted tracker tokens and webhook secrets, every failure
path of tracker sync walked, every output searched (by ``secrets_canary.run``).

A fake tracker on 127.0.0.1 answers every request by *echoing the token it was sent* in its error
body and headers (what a careless proxy or API does), another tracker is unreachable, a third
one's token variable is unset. Then: ``backlog tracker sync`` (DEBUG logs, tables and JSON),
``status``, ``link``, ``show``; and a router serving webhooks signed wrongly, with the secret
itself as the signature, with the secret in the query string, plus ``tracker_tool`` calls and
``/metrics`` — its log included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.pg_support import free_port
from tests.reliability.outage import SERVE, canary

CLI = "import sys; from services.router.cli import main; sys.argv[0] = 'backlog'; main()"


class EchoHandler(BaseHTTPRequestHandler):
    """Refuses everything, repeating the credentials it got (the worst a tracker could do)."""

    def _answer(self) -> None:
        sent = self.headers.get("Authorization", "") + self.headers.get("PRIVATE-TOKEN", "")
        status = 500 if "/search/" in self.path else 401
        body = json.dumps({"message": f"Bad credentials: {sent}", "errors": [{"message": sent}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", sent)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's own output is what is searched."""


def trackers_file(path: Path, echo_url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "trackers": {
            "echo": {"kind": "github", "url": f"{echo_url}/api/v3", "token_env": "ECHO_TRACKER_TOKEN",
                     "project": "acme/platform", "webhook_secret_env": "ECHO_WEBHOOK_SECRET"},
            "down": {"kind": "redmine", "url": f"http://127.0.0.1:{free_port()}", "token_env": "DOWN_TRACKER_TOKEN",
                     "project": "platform", "status_map": {"open": "New", "in_progress": "In Progress",
                                                           "blocked": "Feedback", "done": "Closed",
                                                           "canceled": "Rejected"}},
            "unset": {"kind": "gitlab", "url": echo_url, "token_env": "UNSET_TRACKER_TOKEN", "project": "acme/app",
                      "webhook_secret_env": "UNSET_WEBHOOK_SECRET"},
        },
        "routes": [{"match": {"service": "gateway"}, "tracker": "echo"},
                   {"match": {"service": "billing"}, "tracker": "down"},
                   {"match": {"service": "search"}, "tracker": "unset"}],
    }), encoding="utf-8")
    return path


def run(figures: Any, workdir: Path, clean_env: Any, run_process: Any) -> list[str]:
    """Walk the tracker failure paths; returns the secrets planted."""
    workdir.mkdir(parents=True, exist_ok=True)
    token, down_token, hook_secret = canary("trktoken"), canary("trkdown"), canary("trkhook")
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    echo_url = f"http://127.0.0.1:{server.server_address[1]}"
    trackers = trackers_file(workdir / "trackers.yml", echo_url)
    env = clean_env(workdir, BACKLOG_BACKEND="jsonl", BACKLOG_TRACKERS_PATH=str(trackers),
                    ECHO_TRACKER_TOKEN=token, DOWN_TRACKER_TOKEN=down_token, ECHO_WEBHOOK_SECRET=hook_secret)
    base = [sys.executable, "-c", CLI]
    try:
        for service in ("gateway", "billing", "search"):
            run_process(figures, f"backlog upsert ({service})", [*base, "upsert", "--env", "prod", "--service",
                        service, "--category", "security", "--title", "Canary", "--json"], env, False)
        listed = subprocess.run([*base, "list", "--json"], env=env, capture_output=True, text=True, check=False)
        item_id = json.loads(listed.stdout)["items"][0]["id"] if listed.returncode == 0 else "bl_000000000000"
        for label, args, failing in (
            ("backlog tracker sync (echoing, unreachable, unset token)", ["tracker", "sync"], True),
            ("backlog tracker sync --json", ["tracker", "sync", "--json"], True),
            ("backlog tracker sync --dry-run", ["tracker", "sync", "--dry-run"], False),
            ("backlog tracker status --json", ["tracker", "status", "--json"], False),
            ("backlog tracker link (echoing tracker)",
             ["tracker", "link", item_id, "https://github.com/acme/platform/issues/1"], True),
            ("backlog show (with its tracker state)", ["show", item_id, "--json"], False),
        ):
            run_process(figures, label, [*base, *args], env, failing)
        webhooks(figures, workdir, env, hook_secret)
    finally:
        server.shutdown()
        server.server_close()
    return [token, down_token, hook_secret]


def webhooks(figures: Any, workdir: Path, env: dict[str, str], secret: str) -> None:
    port = free_port()
    log_path = workdir / "tracker-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(port), "--access-log"],
                                env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"issue": {"number": 1}, "repository": {"full_name": "acme/platform"}}).encode()
    wrong = "sha256=" + hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        cases = [
            ("webhook, wrong signature", "/v1/trackers/echo/webhook", {"X-Hub-Signature-256": wrong}),
            ("webhook, the secret as the signature", "/v1/trackers/echo/webhook", {"X-Hub-Signature-256": secret}),
            ("webhook, the secret in the query", f"/v1/trackers/echo/webhook?secret={secret}", {}),
            ("webhook, the secret as GitLab's token on a tracker without one", "/v1/trackers/unset/webhook",
             {"X-Gitlab-Token": secret}),
            ("webhook, unknown tracker", "/v1/trackers/nope/webhook", {"X-Hub-Signature-256": secret}),
        ]
        with httpx.Client(base_url=url, timeout=30) as http:
            for label, path, headers in cases:
                response = http.post(path, content=body, headers={"Content-Type": "application/json", **headers})
                figures.add(f"{label} -> {response.status_code}", f"{response.headers}\n{response.text}")
                if response.status_code != 401:
                    figures.notes.append(f"{label}: expected 401, got {response.status_code}")
            metrics = http.get("/metrics")
            figures.add("/metrics (tracker gauges)", metrics.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        figures.add("router log (trackers, DEBUG, access log on)", log_path.read_text(errors="replace"))
