"""Secrets canary: plant unique passwords and API keys, make everything fail, grep everything.

A throwaway cluster's app role gets a canary password; the router's accounts get canary keys.
Then every error path a person or a scheduler meets is walked, each in its own process so its
whole output is captured: the migration script (unreachable, wrong password, a statement
refused, a malformed DSN, dry run), the ``backlog`` CLI (unreachable, wrong password, schema
missing, bad input, ``serve`` that cannot start), the router under ``backlog serve`` with the
database down and back (bad credentials in every form, bad input, 503s, health, metrics, docs),
and the governance runner with a wrong key; then tracker sync's paths with planted tracker tokens
and webhook secrets (``tracker_secrets``: a tracker that echoes the token, one unreachable, one
whose token is unset, webhooks signed wrongly). Every stdout, stderr, log line, response header
and body is searched for every planted secret. The figure is the number of occurrences (goal 0).

The malformed and wrong-password DSNs carry canaries of their own: a secret a user mistyped
must not be echoed either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.pg_support import ThrowawayCluster, free_port, migrate
from tests.reliability import tracker_secrets
from tests.reliability.outage import ACCOUNT_KEYS, REPO, SERVE, canary

MIGRATE = str(REPO / "ops" / "scripts" / "migrate_backlog_postgres.py")
GOVERNANCE = str(REPO / "ops" / "scripts" / "run_governance_job.py")
_lock = threading.Lock()
CLI = "import sys; from services.router.cli import main; sys.argv[0] = 'backlog'; main()"


@dataclass
class SecretsFigures:
    checks: int = 0
    occurrences: int = 0
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (what ran, everything it produced)
    notes: list[str] = field(default_factory=list)  # tracebacks shown, failure paths that succeeded
    leaks: list[str] = field(default_factory=list)  # where a planted secret was found

    def add(self, label: str, text: str) -> None:
        self.checks += 1
        self.transcript.append((label, text))


def clean_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ACCOUNT_KEYS and not k.startswith("BACKLOG_") and k not in ("POSTGRES_DSN", "REPO_ROOT")}
    env.update({"PYTHONPATH": str(REPO), "REPO_ROOT": str(REPO), "BACKLOG_JSONL_DIR": str(workdir / "backlog"),
                "BACKLOG_STATE_DIR": str(workdir / "state"), "BACKLOG_REPORTS_DIR": str(workdir / "reports"),
                "BACKLOG_SIGNALS_DIR": str(workdir / "signals"), "BACKLOG_RISK_DIR": str(workdir / "risk"),
                "BACKLOG_PG_CONNECT_TIMEOUT_SECONDS": "1", "BACKLOG_LOG_LEVEL": "DEBUG", **extra})
    return env


Job = tuple[str, list[str], dict[str, str], bool]  # (label, argv, env, a failure is expected)


def run_process(figures: SecretsFigures, label: str, args: list[str], env: dict[str, str],
                expect_failure: bool = True) -> None:
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    with _lock:
        figures.add(label, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        if expect_failure and done.returncode == 0:
            figures.notes.append(f"{label}: expected a failure, got exit 0")
        if "Traceback" in done.stderr:
            figures.notes.append(f"{label}: a traceback reached the user")


def run_all(figures: SecretsFigures, jobs: list[Job]) -> None:
    """Independent processes side by side (each spends its first second importing)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(run_process, figures, *job) for job in jobs]:
            future.result()


def migration_script(workdir: Path, dsns: dict[str, str]) -> list[Job]:
    env = clean_env(workdir)
    jobs: list[Job] = [(f"migrate --dsn ({label})", [sys.executable, MIGRATE, "--dsn", dsn, "--connect-timeout", "1"],
                        env, True)
                       for label, dsn in dsns.items() if label != "schema missing"]  # that one it would create
    jobs.append(("migrate --dry-run (wrong password)",
                 [sys.executable, MIGRATE, "--dsn", dsns["wrong password"], "--dry-run", "--connect-timeout", "1"],
                 env, True))
    jobs.append(("migrate from $BACKLOG_POSTGRES_DSN (unreachable)",
                 [sys.executable, MIGRATE, "--connect-timeout", "1"],
                 clean_env(workdir, BACKLOG_POSTGRES_DSN=dsns["unreachable"]), True))
    return jobs


def cli(workdir: Path, dsns: dict[str, str]) -> list[Job]:
    base = [sys.executable, "-c", CLI]
    jobs: list[Job] = [
        (f"backlog list (postgres, {label})", [*base, "list", "--env", "prod"],
         clean_env(workdir, BACKLOG_BACKEND="postgres", BACKLOG_POSTGRES_DSN=dsns[label]), True)
        for label in ("unreachable", "wrong password", "schema missing", "malformed")]
    auto = clean_env(workdir, BACKLOG_BACKEND="auto", BACKLOG_POSTGRES_DSN=dsns["unreachable"])
    jobs += [
        ("backlog dashboard (auto, unreachable)", [*base, "dashboard", "--env", "prod"], auto, False),
        ("backlog status (auto, unknown item)", [*base, "status", "bl_0000000000000000000000", "done"], auto, True),
        ("backlog upsert (bad input)",
         [*base, "upsert", "--env", "../etc", "--service", "gw", "--category", "security", "--title", "x"], auto, True),
        ("backlog serve (postgres, unreachable)", [*base, "serve", "--port", str(free_port())],
         clean_env(workdir, BACKLOG_BACKEND="postgres", BACKLOG_POSTGRES_DSN=dsns["unreachable"]), True),
    ]
    return jobs


def router(figures: SecretsFigures, workdir: Path, cluster: ThrowawayCluster, dsn: str, keys: dict[str, str],
           wrong_key: str) -> None:
    """The server starts with the database down, serves hostile requests, then sees it come back."""
    cluster.stop()
    port = free_port()
    log_path = workdir / "server.log"
    env = clean_env(workdir, BACKLOG_BACKEND="auto", BACKLOG_POSTGRES_DSN=dsn, BACKLOG_PG_RETRY_SECONDS="1",
                    **keys)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(port), "--access-log"],
                                env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    admin = keys["BACKLOG_ADMIN_API_KEY"]
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
        item = {"env": "prod", "service": "gateway", "category": "security", "title": "Canary check"}
        requests: list[tuple[str, str, dict[str, str], object]] = [
            ("POST", "/v1/backlog/items", {}, item),
            ("POST", "/v1/backlog/items", {"X-API-Key": wrong_key}, item),
            ("POST", "/v1/backlog/items", {"X-API-Key": admin[:-1]}, item),
            ("POST", "/v1/backlog/items", {"Authorization": f"Basic {admin}"}, item),
            ("POST", "/v1/backlog/items", {"Authorization": f"Bearer {admin}", "X-API-Key": wrong_key}, item),
            ("GET", f"/v1/backlog/dashboard?env=prod&api_key={admin}", {"X-API-Key": admin}, None),
            ("GET", f"/v1/backlog/dashboard?env=prod&token={wrong_key}", {}, None),
            ("POST", "/v1/backlog/items", {"X-API-Key": admin, "X-Big": "b" * 10_000}, {**item, "id": "bl_x"}),
            ("POST", "/v1/backlog/items", {"X-API-Key": admin}, {**item, "env": "../../etc"}),
            ("POST", "/v1/backlog/items", {"X-API-Key": admin}, item),  # accepted on the fallback
            ("POST", "/v1/backlog/items/bl_0000000000000000000000/status", {"X-API-Key": admin}, {"status": "done"}),
            ("POST", "/v1/tools/execute", {"X-API-Key": admin},
             {"tool": "backlog_tool", "action": "cleanup", "dsn": dsn}),
            ("GET", "/readyz", {}, None), ("GET", "/metrics", {}, None), ("GET", "/openapi.json", {}, None),
            ("GET", "/", {}, None),
        ]
        with httpx.Client(base_url=url, timeout=30) as http:
            def walk(phase: str) -> None:
                for method, path, headers, body in requests:
                    response = http.request(method, path, headers=headers, json=body)
                    figures.add(f"{phase}: {method} {path.split('?')[0]} -> {response.status_code}",
                                f"{response.headers}\n{response.text}")
                    if response.status_code >= 500 and response.status_code != 503:
                        figures.notes.append(f"{phase}: {method} {path}: {response.status_code}")

            walk("database down")
            cluster.start()
            deadline = time.monotonic() + 30
            while http.get("/readyz").json().get("backend") != "postgres" and time.monotonic() < deadline:
                time.sleep(0.2)
            walk("database back")
    finally:
        if not cluster.running:
            cluster.start()
        run_process(figures, "run_governance_job (a key the router does not know)",
                    [sys.executable, GOVERNANCE, "--tool", "backlog_tool", "--action", "cleanup", "--router-url", url,
                     "--retries", "0"], clean_env(workdir, SCHEDULER_API_KEY=wrong_key))
        run_process(figures, "run_governance_job (router unreachable)",
                    [sys.executable, GOVERNANCE, "--tool", "backlog_tool", "--action", "cleanup", "--router-url",
                     f"http://127.0.0.1:{free_port()}", "--retries", "0", "--timeout", "2"],
                    clean_env(workdir, SCHEDULER_API_KEY=keys["SCHEDULER_API_KEY"]))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        figures.add("router log (DEBUG, access log on)", log_path.read_text(errors="replace"))


def run(workdir: Path, cluster: ThrowawayCluster) -> SecretsFigures:
    figures = SecretsFigures()
    password, wrong_password, malformed_password = canary("pw"), canary("wrongpw"), canary("typo")
    keys = {"BACKLOG_ADMIN_API_KEY": canary("admin"), "SCHEDULER_API_KEY": canary("sched"),
            "ONCALL_API_KEY": canary("oncall"), "READONLY_API_KEY": canary("ro")}
    wrong_key = canary("wrongkey")
    planted = [password, wrong_password, malformed_password, wrong_key, *keys.values()]
    suffix = os.urandom(4).hex()
    user, db, bare_db, locked_user = f"bb_sec_{suffix}", f"bb_sec_{suffix}", f"bb_sec_bare_{suffix}", f"bb_lk_{suffix}"
    if not cluster.running:
        cluster.start()
    dsn = cluster.create_app_database(user, password, db)
    migrate(dsn)
    cluster.admin(f"CREATE DATABASE {bare_db} OWNER {user}",
                  f"CREATE ROLE {locked_user} LOGIN PASSWORD '{password}'",
                  f"REVOKE ALL ON DATABASE {bare_db} FROM PUBLIC",
                  f"GRANT CONNECT ON DATABASE {bare_db} TO {locked_user}")
    dsns = {
        "unreachable": f"postgresql://{user}:{password}@127.0.0.1:{free_port()}/{db}",
        "unreachable, keyword form": f"host=127.0.0.1 port={free_port()} user={user} password={password} dbname={db}",
        "wrong password": cluster.dsn(user, wrong_password, db),
        "schema missing": cluster.dsn(user, password, bare_db),
        "statement refused": cluster.dsn(locked_user, password, bare_db),
        "malformed": f"postgresql://{user}:{malformed_password}@127.0.0.1:notaport/{db}",
    }
    try:
        run_all(figures, migration_script(workdir, dsns) + cli(workdir, dsns))
        router(figures, workdir, cluster, dsn, keys, wrong_key)
        planted += tracker_secrets.run(figures, workdir / "trackers", clean_env, run_process)
    finally:
        if not cluster.running:
            cluster.start()
        cluster.admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"DROP DATABASE IF EXISTS {bare_db} WITH (FORCE)",
                      f"DROP ROLE IF EXISTS {locked_user}", f"DROP ROLE IF EXISTS {user}")
    for label, text in figures.transcript:
        hits = sum(text.count(secret) for secret in planted)
        if hits:
            figures.occurrences += hits
            figures.leaks.append(f"{label}: {hits} planted secret(s) in its output")
    return figures
