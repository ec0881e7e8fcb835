"""A router and a scheduler that receive no requests at all return to Postgres on their own.

Each long-running process retries Postgres every ``BACKLOG_PG_RETRY_SECONDS`` on a timer and
replays both journals (backlog and signals) as soon as Postgres answers. Here a throwaway cluster
is really stopped and started under a ``backlog serve`` and a ``backlog scheduler``, each with its
own folders. Writes are accepted during the outage by the router itself (HTTP) and by CLI runs
that journal into each process's folders and exit; after the restart nobody sends a request,
and Postgres, read directly, must hold every one of them within the retry interval + a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.pg_support import ThrowawayCluster, app_database, free_port
from tests.reliability.outage import ACCOUNT_KEYS, REPO, SERVE
from tests.signals.builders import incident

pytestmark = pytest.mark.postgres

APP_USER, DB, PASSWORD = "bb_timer", "bb_timer_db", "timer-pw-8c2e4a1f7b"
RETRY_SECONDS = 2.0
GRACE_SECONDS = 6.0  # connect, replay, and a slow shared CI machine
ADMIN_KEY = "timer-admin-key-Qw3rTy9UiOp2"
REGISTRY = """version: 1
cron: {user: daarion, shell: /bin/sh, path: /usr/bin:/bin, repo_root: /opt/x, router_url: http://localhost:8000,
       env_file: /etc/daarion/governance.env, python: python3, runner: ops/scripts/run_governance_job.py}
jobs:
  - name: yearly_cleanup
    description: Never due during the test (its last slot is long past its catch-up window).
    schedule: "0 0 1 1 *"
    tool: backlog_tool
    action: cleanup
    params: {}
    entitlement: tools.backlog.admin
    dry_run: Reports what would be removed.
    log_file: /var/log/daarion/cleanup.log
    catch_up_minutes: 1
"""


def environment(folder: Path, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ACCOUNT_KEYS and not k.startswith("BACKLOG_")
           and k not in ("POSTGRES_DSN", "REPO_ROOT")}
    env.update({
        "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "REPO_ROOT": str(REPO), "BACKLOG_BACKEND": "auto",
        "BACKLOG_POSTGRES_DSN": dsn,
        "BACKLOG_JSONL_DIR": str(folder / "backlog"), "BACKLOG_STATE_DIR": str(folder / "state"),
        "BACKLOG_REPORTS_DIR": str(folder / "reports"), "BACKLOG_SIGNALS_DIR": str(folder / "signals"),
        "BACKLOG_RISK_DIR": str(folder / "risk"), "BACKLOG_PG_RETRY_SECONDS": str(RETRY_SECONDS),
        "BACKLOG_PG_CONNECT_TIMEOUT_SECONDS": "1", "BACKLOG_LOG_LEVEL": "INFO", "BACKLOG_ADMIN_API_KEY": ADMIN_KEY,
    })
    return env


class Process:
    """``backlog <args>`` in the background, its output in ``<folder>/<name>.log``."""

    def __init__(self, folder: Path, name: str, env: dict[str, str], *args: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, *args], env=env, cwd=folder,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in {self.log_path}"
            time.sleep(0.1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.log_path.read_text(errors="replace")


def cli(env: dict[str, str], folder: Path, *args: str) -> None:
    """A short CLI run during the outage: it falls back, journals, answers, exits."""
    done = subprocess.run([sys.executable, "-c", SERVE, *args], env=env, cwd=folder, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using JsonlBacklogStore" in done.stderr, done.stderr


def accepted_by_cli(env: dict[str, str], folder: Path, name: str) -> None:
    cli(env, folder, "upsert", "--env", "prod", "--service", "gateway", "--category", "arch_review",
        "--title", f"Written by a CLI run during the outage ({name})", "--dedupe-key", f"cli-{name}")
    lines = folder / f"{name}-signals.jsonl"
    lines.write_text(json.dumps(incident(f"INC-CLI-{name}")) + "\n")
    cli(env, folder, "signals", "import", str(lines))


def in_postgres(dsn: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        keys = {r[0] for r in conn.execute("SELECT dedupe_key FROM backlog_items").fetchall()}
        ids = {r[0] for r in conn.execute("SELECT id FROM signals").fetchall()}
    return keys, ids


@pytest.fixture
def dsn(cluster: ThrowawayCluster) -> Iterator[str]:
    yield app_database(cluster, APP_USER, PASSWORD, DB,
                       empty="backlog_items, backlog_events, backlog_applied_ops, signals, risk_snapshots, job_runs")
    if not cluster.running:
        cluster.start()


def test_an_idle_router_and_scheduler_replay_the_outage_into_postgres_on_their_own(
        cluster: ThrowawayCluster, dsn: str, tmp_path: Path) -> None:
    router_dir, scheduler_dir = tmp_path / "router", tmp_path / "scheduler"
    router_env, scheduler_env = environment(router_dir, dsn), environment(scheduler_dir, dsn)
    registry = tmp_path / "registry.yml"
    registry.write_text(REGISTRY)
    port = free_port()
    router = Process(router_dir, "router", router_env, "serve", "--port", str(port))
    scheduler = Process(scheduler_dir, "scheduler", scheduler_env, "scheduler", "--registry", str(registry),
                        "--poll-seconds", "1")
    try:
        router.wait_for("Application startup complete")
        scheduler.wait_for("scheduler: 1 job(s)")  # its one job is never due: the scheduler calls no store
        base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": ADMIN_KEY}
        assert httpx.get(f"{base}/readyz", timeout=5).json()["backend"] == "postgres"

        cluster.stop()
        item = {"env": "prod", "service": "gateway", "category": "arch_review", "dedupe_key": "http-router",
                "title": "Written through the router during the outage"}
        answer = httpx.post(f"{base}/v1/backlog/items", json=item, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{base}/readyz", timeout=5).json()["degraded"] is True
        answer = httpx.post(f"{base}/v1/signals", json={"signals": [incident("INC-HTTP")]}, headers=headers,
                            timeout=30)
        assert answer.status_code == 200 and answer.json()["backend"] == "jsonl", answer.text
        accepted_by_cli(router_env, router_dir, "router")
        accepted_by_cli(scheduler_env, scheduler_dir, "scheduler")
        for folder in (router_dir, scheduler_dir):
            assert (folder / "backlog" / "fallback_journal.jsonl").stat().st_size > 0
            assert (folder / "signals" / "signals_journal.jsonl").stat().st_size > 0

        cluster.start()  # from here on, nobody sends either process a request
        back = time.monotonic()
        want_keys = {"http-router", "cli-router", "cli-scheduler"}
        want_ids = {"INC-HTTP", "INC-CLI-router", "INC-CLI-scheduler"}
        keys, ids = in_postgres(dsn)
        while not (want_keys <= keys and want_ids <= ids) and time.monotonic() - back < RETRY_SECONDS + GRACE_SECONDS:
            time.sleep(0.2)
            keys, ids = in_postgres(dsn)
        took = time.monotonic() - back
        assert want_keys <= keys and want_ids <= ids, (keys, ids, router.log_path.read_text()[-3000:],
                                                       scheduler.log_path.read_text()[-3000:])
        assert took < RETRY_SECONDS + GRACE_SECONDS
        for folder in (router_dir, scheduler_dir):
            assert (folder / "backlog" / "fallback_journal.jsonl").stat().st_size == 0
            assert (folder / "signals" / "signals_journal.jsonl").stat().st_size == 0
    finally:
        logs = router.stop() + scheduler.stop()
    assert "Traceback" not in logs, logs[-3000:]
