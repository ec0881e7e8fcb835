"""Database outage under load: the real router (``backlog serve``, Auto store) in a subprocess on a
throwaway PostgreSQL cluster, four HTTP clients writing, the cluster stopped and started again.

Shared by the CI tier (pytest, one short outage) and ``make reliability`` (several outages,
more writes). Figures, each with goal 0 unless said otherwise:

- ``lost``: an acknowledged write whose effect is not in Postgres after replay (a title, a
  status, a comment), or an item missing altogether;
- ``duplicated``: an item or event more than once (an extra event, a comment twice);
- ``dashboard_mismatches``: ``/v1/backlog/dashboard`` totals, status and priority counts
  differing from the test's own model of what it wrote;
- ``bad_failures``: a failed request that was not ``503`` with a ``Retry-After`` header
  (a 5xx of another kind, a 409/404 the model says cannot happen, a broken connection);
- ``canary_hits``: the DSN's password or an API key in the server's log or any response body.

Reported, not judged: the share of requests that failed with 503 + Retry-After, and the
recovery time (cluster started → ``/readyz`` says Postgres and every write is replayed).

The clients own disjoint keys and write sequentially, so the model is exact. A write that got
a 503 is retried (same body) until it is acknowledged: upserts and status moves are idempotent
when repeated. A comment that got a 503 is not retried; it may appear at most once.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.router.domain.enums import Status
from services.router.domain.transitions import ALLOWED_MOVES
from tests.pg_support import ThrowawayCluster, free_port, migrate

REPO = Path(__file__).resolve().parents[2]
ENVS = ("prod", "staging")
PRIORITIES = ("P0", "P1", "P2", "P3")
TITLES = ("Rotate the gateway certificates", "Patch the auth service", "Tune the queue consumers")
ACCOUNT_KEYS = ("BACKLOG_ADMIN_API_KEY", "SCHEDULER_API_KEY", "ONCALL_API_KEY", "READONLY_API_KEY",
                "ALERTMANAGER_API_KEY")
SERVE = "import sys; from services.router.cli import main; sys.argv[0] = 'backlog'; main()"


def canary(kind: str) -> str:
    """A unique string that must never show up anywhere (no placeholder words, high entropy)."""
    return f"cnry{kind}{secrets.token_hex(12)}"


@dataclass
class OutageFigures:
    acknowledged: int = 0
    requests: int = 0
    failed: int = 0
    failed_503_retry_after: int = 0
    lost: int = 0
    duplicated: int = 0
    dashboard_mismatches: int = 0
    bad_failures: int = 0
    canary_hits: int = 0
    outages: int = 0
    writes_during_outages: int = 0
    recovery_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def misses(self) -> dict[str, int]:
        judged = ("lost", "duplicated", "dashboard_mismatches", "bad_failures", "canary_hits")
        return {k: getattr(self, k) for k in judged if getattr(self, k)}

    @property
    def share_503_permille(self) -> int:
        return round(1000 * self.failed_503_retry_after / self.requests) if self.requests else 0


@dataclass
class KeyModel:
    key: str
    env: str
    priority: str
    item_id: str | None = None
    title: str | None = None
    status: str = "open"
    events: list[str] = field(default_factory=list)  # expected non-comment event types, in order
    comments: list[str] = field(default_factory=list)  # acknowledged comment messages
    maybe_comments: list[str] = field(default_factory=list)  # answered 503: at most once
    pending: tuple[str, str, dict[str, Any]] | None = None  # (kind, path, body) answered 503, to repeat
    pending_since: float = 0.0


class Server:
    """``backlog serve`` in a subprocess; its stdout+stderr go to one log file."""

    def __init__(self, workdir: Path, dsn: str, keys: dict[str, str], retry_seconds: float) -> None:
        self.port = free_port()
        self.log_path = workdir / "server.log"
        self.jsonl_dir = workdir / "backlog"
        env = {k: v for k, v in os.environ.items() if k not in ACCOUNT_KEYS and not k.startswith("BACKLOG_")
               and k not in ("POSTGRES_DSN", "REPO_ROOT")}
        env.update({
            "PYTHONPATH": str(REPO), "REPO_ROOT": str(REPO), "BACKLOG_BACKEND": "auto",
            "BACKLOG_POSTGRES_DSN": dsn, "BACKLOG_JSONL_DIR": str(self.jsonl_dir),
            "BACKLOG_STATE_DIR": str(workdir / "state"), "BACKLOG_REPORTS_DIR": str(workdir / "reports"),
            "BACKLOG_SIGNALS_DIR": str(workdir / "signals"), "BACKLOG_RISK_DIR": str(workdir / "risk"),
            "BACKLOG_PG_RETRY_SECONDS": str(retry_seconds), "BACKLOG_PG_CONNECT_TIMEOUT_SECONDS": "1",
            "BACKLOG_LOG_LEVEL": "DEBUG", **keys,
        })
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(self.port)], env=env,
                                     cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class Client(threading.Thread):
    def __init__(self, number: int, base: str, key: str, keys_per_client: int, seed: int,
                 stop: threading.Event, figures: OutageFigures, lock: threading.Lock, bodies: list[str],
                 max_ops: int) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.rng = random.Random(seed * 31 + number)
        self.http = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)
        self.models = [KeyModel(f"outage-c{number}-k{i}", ENVS[i % 2], PRIORITIES[(number + i) % 4])
                       for i in range(keys_per_client)]
        self.stop, self.figures, self.lock, self.bodies = stop, figures, lock, bodies
        self.max_ops = max_ops
        self.in_outage = threading.Event()
        self.comment_no = 0

    def run(self) -> None:
        try:
            done = 0
            while not self.stop.is_set() and done < self.max_ops:
                self.step(self.rng.choice(self.models))
                done += 1
            for m in self.models:  # finish what is pending: every write ends acknowledged
                deadline = time.monotonic() + 120
                while m.pending is not None and time.monotonic() < deadline:
                    self.step(m)
                    if m.pending is not None:
                        time.sleep(0.1)
                if m.pending is not None:
                    self.bad(f"{m.pending[0]} {m.pending[1]}: never acknowledged")
        except Exception as exc:  # a crash of the client is a failure of the run, not silence
            with self.lock:
                self.figures.bad_failures += 1
                self.figures.notes.append(f"{self.name} crashed: {exc!r}")
        finally:
            self.http.close()

    def send(self, method: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """One request: ("ok", answer), ("retry", None) for a 503 with Retry-After, or ("failed", None)."""
        with self.lock:
            self.figures.requests += 1
        try:
            response = self.http.request(method, path, json=body)
        except httpx.TransportError as exc:
            self.bad(f"{method} {path}: {exc!r}")
            return "failed", None
        with self.lock:
            self.bodies.append(response.text)
        if response.status_code == 200:
            return "ok", dict(response.json())
        with self.lock:
            self.figures.failed += 1
        if response.status_code == 503 and response.headers.get("Retry-After", "").isdigit():
            with self.lock:
                self.figures.failed_503_retry_after += 1
            return "retry", None
        self.bad(f"{method} {path}: {response.status_code} {response.text[:200]} "
                 f"Retry-After={response.headers.get('Retry-After')}")
        return "failed", None

    def bad(self, note: str) -> None:
        with self.lock:
            self.figures.bad_failures += 1
            if len(self.figures.notes) < 50:
                self.figures.notes.append(note)

    def step(self, m: KeyModel) -> None:
        """One write on ``m``'s key: the pending one (a 503 earlier) again, else a new one.

        While a write on a key waits for its retry, the client goes on with its other keys, so
        the outage sees new items, updates and moves, not only clients waiting."""
        if m.pending is None:
            choice = self.rng.random()
            if m.item_id is None or choice < 0.5:
                body = {"env": m.env, "service": f"svc-{m.key.split('-')[1]}", "category": "reliability",
                        "title": self.rng.choice(TITLES), "priority": m.priority, "dedupe_key": m.key}
                m.pending = ("upsert", "/v1/backlog/items", body)
            elif choice < 0.85:
                target = self.rng.choice(sorted(s.value for s in ALLOWED_MOVES[Status(m.status)]))
                m.pending = ("status", f"/v1/backlog/items/{m.item_id}/status", {"status": target})
            else:
                self.comment_no += 1
                message = f"{m.key} note {self.comment_no}"
                m.pending = ("comment", f"/v1/backlog/items/{m.item_id}/comments", {"message": message})
        kind, path, body = m.pending
        if time.monotonic() - m.pending_since > 120 and m.pending_since:
            self.bad(f"{kind} {path}: not acknowledged within 120 s")
        outcome, answer = self.send("POST", path, body)
        if outcome == "retry" and kind != "comment":
            m.pending_since = m.pending_since or time.monotonic()
            time.sleep(0.02)  # Retry-After says seconds; the test is impatient but not a busy loop
            return  # same body again later: upserts and status moves are idempotent when repeated
        m.pending, m.pending_since = None, 0.0
        if outcome == "retry":
            m.maybe_comments.append(str(body["message"]))
            return
        if answer is None:
            return
        if kind == "upsert":
            if m.item_id is None:
                m.item_id = str(answer["item"]["id"])
                m.events.append("created")
            elif body["title"] != m.title:
                m.events.append("updated")
            m.title = str(body["title"])
        elif kind == "status":
            m.status = str(body["status"])
            m.events.append("status_changed")
        else:
            m.comments.append(str(body["message"]))
        with self.lock:
            self.figures.acknowledged += 1
            if self.in_outage.is_set():
                self.figures.writes_during_outages += 1


def pg_truth(dsn: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, str]]], int]:
    """Items by dedupe key, their events (type, message) in order, and duplicate dedupe keys."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT dedupe_key, id, title, status, priority, env FROM backlog_items").fetchall()
        events: dict[str, list[tuple[str, str]]] = {}
        for key, etype, message in conn.execute(
                "SELECT i.dedupe_key, e.type, e.message FROM backlog_events e JOIN backlog_items i "
                "ON i.id = e.item_id ORDER BY e.seq").fetchall():
            events.setdefault(key, []).append((etype, message))
    keys = Counter(r[0] for r in rows)
    items = {r[0]: {"id": r[1], "title": r[2], "status": r[3], "priority": r[4], "env": r[5]} for r in rows}
    return items, events, sum(n - 1 for n in keys.values())


def compare(models: list[KeyModel], dsn: str, figures: OutageFigures) -> None:
    items, events, duplicate_keys = pg_truth(dsn)
    figures.duplicated += duplicate_keys
    for m in models:
        if m.item_id is None:
            continue
        rec = items.get(m.key)
        if rec is None:
            figures.lost += 1
            figures.notes.append(f"{m.key}: missing from Postgres")
            continue
        if (rec["title"], rec["status"], rec["priority"]) != (m.title, m.status, m.priority):
            figures.lost += 1
            figures.notes.append(f"{m.key}: Postgres has {rec['title']!r}/{rec['status']}, acknowledged "
                                 f"{m.title!r}/{m.status}")
        got = events.get(m.key, [])
        kinds = [t for t, _ in got if t != "commented"]
        if kinds != m.events:
            extra = len(kinds) - len(m.events)
            if extra > 0 and kinds[:len(m.events)] == m.events:
                figures.duplicated += extra
            else:
                figures.lost += 1
            figures.notes.append(f"{m.key}: events {kinds} != acknowledged {m.events}")
        said = Counter(msg for t, msg in got if t == "commented")
        for message in m.comments:
            if said[message] == 0:
                figures.lost += 1
                figures.notes.append(f"{m.key}: comment {message!r} lost")
        for message, n in said.items():
            allowed = (1 if message in m.comments or message in m.maybe_comments else 0)
            if n > allowed:
                figures.duplicated += n - allowed
                figures.notes.append(f"{m.key}: comment {message!r} x{n}")


def dashboard_check(http: httpx.Client, models: list[KeyModel], figures: OutageFigures, bodies: list[str]) -> None:
    for env in ENVS:
        mine = [m for m in models if m.env == env and m.item_id is not None]
        response = http.get("/v1/backlog/dashboard", params={"env": env})
        bodies.append(response.text)
        board = response.json()
        status = Counter(m.status for m in mine)
        priority = Counter(m.priority for m in mine)
        want = {"total": len(mine), "backend": "postgres", "degraded": False,
                "status_counts": {s.value: status.get(s.value, 0) for s in Status},
                "priority_counts": {p: priority.get(p, 0) for p in PRIORITIES}}
        got = {k: board.get(k) for k in want}
        if got != want:
            figures.dashboard_mismatches += 1
            figures.notes.append(f"dashboard {env}: {got} != model {want}")


def wait_recovered(http: httpx.Client, journal: Path, timeout: float) -> float | None:
    """Seconds until /readyz names Postgres, not degraded, with the fallback journal empty."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            ready = http.get("/readyz", timeout=5)
            state = ready.json() if ready.status_code == 200 else {}
        except (httpx.TransportError, ValueError):
            state = {}
        pending = journal.exists() and journal.stat().st_size > 0
        if state.get("backend") == "postgres" and not state.get("degraded") and not pending:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def run(workdir: Path, *, clients: int = 4, keys_per_client: int = 12, outages: int = 1, up_seconds: float = 1.5,
        down_seconds: float = 2.0, retry_seconds: float = 1.0, seed: int = 0,
        cluster: ThrowawayCluster | None = None) -> OutageFigures:
    """Clients write for ``up_seconds``, the cluster goes down (``pg_ctl stop -m immediate``) for
    ``down_seconds``, comes back; ``outages`` times; then the clients stop and everything is compared."""
    rng = random.Random(seed)
    figures = OutageFigures()
    password, keys = canary("pw"), {"BACKLOG_ADMIN_API_KEY": canary("admin"), "ONCALL_API_KEY": canary("oncall")}
    secrets_planted = [password, *keys.values()]
    owned = cluster is None
    cluster = cluster or ThrowawayCluster()
    if not cluster.running:
        cluster.start()
    user, db = f"bb_out_{secrets.token_hex(4)}", f"bb_outage_{secrets.token_hex(4)}"
    dsn = cluster.create_app_database(user, password, db)
    migrate(dsn)
    server: Server | None = None
    bodies: list[str] = []
    lock = threading.Lock()
    try:
        server = Server(workdir, dsn, keys, retry_seconds)
        stop = threading.Event()
        threads = [Client(n, server.url, keys["ONCALL_API_KEY"], keys_per_client, seed, stop, figures, lock, bodies,
                          max_ops=10**9) for n in range(clients)]
        for t in threads:
            t.start()
        admin = httpx.Client(base_url=server.url, headers={"X-API-Key": keys["BACKLOG_ADMIN_API_KEY"]}, timeout=30)
        journal = server.jsonl_dir / "fallback_journal.jsonl"
        try:
            for _ in range(outages):
                time.sleep(up_seconds * rng.uniform(0.7, 1.3))
                for t in threads:
                    t.in_outage.set()
                cluster.stop("immediate")
                figures.outages += 1
                time.sleep(down_seconds * rng.uniform(0.7, 1.3))
                cluster.start()
                for t in threads:
                    t.in_outage.clear()
                took = wait_recovered(admin, journal, timeout=60)
                if took is None:
                    figures.bad_failures += 1
                    figures.notes.append("not recovered within 60 s of the cluster's restart")
                else:
                    figures.recovery_seconds.append(took)
            time.sleep(up_seconds / 2)
        finally:
            stop.set()
            for t in threads:
                t.join(180)
        if wait_recovered(admin, journal, timeout=60) is None:
            figures.notes.append("not on Postgres at the end")
        models = [m for t in threads for m in t.models]
        compare(models, dsn, figures)
        dashboard_check(admin, models, figures, bodies)
        admin.close()
    finally:
        if server is not None:
            server.stop()
        if not cluster.running:
            cluster.start()
        cluster.admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"DROP ROLE IF EXISTS {user}")
        if owned:
            cluster.destroy()
    text = "\n".join(bodies) + (server.log_text() if server is not None else "")
    figures.canary_hits = sum(text.count(s) for s in secrets_planted)
    if figures.canary_hits:
        figures.notes.append("a planted secret was found in a response or the server log")
    return figures
