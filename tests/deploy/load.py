"""A write load spread over both routers, failing over the way a client behind a balancer does.

Each write is an upsert with its own dedupe key, sent first to router ``n % 2``; a connection
error, a timeout or a 5xx is retried on the other router (the same request: an upsert by dedupe
key is idempotent, so a write that committed before its answer was lost is not doubled). A write
is *acknowledged* only by a 200 carrying the item's id — those are the writes that must be in
Postgres exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

WRITE_DEADLINE_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 5.0


@dataclass
class Ack:
    key: str
    item_id: str
    router: str
    at: float  # time.monotonic()
    failed_over: bool


@dataclass
class Attempt:
    router: str
    at: float
    ok: bool
    detail: str = ""


@dataclass
class LoadResult:
    acks: list[Ack] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    sent: int = 0
    given_up: list[str] = field(default_factory=list)  # keys never acknowledged within the deadline
    refused: list[str] = field(default_factory=list)  # 4xx answers: a defect, never retried

    def failures_of(self, router: str, start: float, end: float) -> list[Attempt]:
        return [a for a in self.attempts if a.router == router and start <= a.at <= end and not a.ok]

    def acks_of(self, router: str, start: float, end: float) -> list[Ack]:
        return [a for a in self.acks if a.router == router and start <= a.at <= end]


class WriteLoad:
    def __init__(self, routers: dict[str, str], key: str, run_id: str, *, threads: int = 4) -> None:
        self.routers = routers  # name -> base URL
        self.names: Sequence[str] = sorted(routers)
        self.headers = {"X-API-Key": key}
        self.run_id = run_id
        self.threads = threads
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> LoadResult:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=WRITE_DEADLINE_SECONDS + 10)
        return self.result

    def _take(self) -> int:
        with self._lock:
            self._next += 1
            self.result.sent += 1
            return self._next

    def _note(self, attempt: Attempt | None = None, ack: Ack | None = None) -> None:
        with self._lock:
            if attempt is not None:
                self.result.attempts.append(attempt)
            if ack is not None:
                self.result.acks.append(ack)

    def _work(self) -> None:
        clients = {name: httpx.Client(base_url=url, headers=self.headers, timeout=REQUEST_TIMEOUT_SECONDS)
                   for name, url in self.routers.items()}
        try:
            while not self._stop.is_set():
                self._write(clients, self._take())
        finally:
            for client in clients.values():
                client.close()

    def _write(self, clients: dict[str, httpx.Client], n: int) -> None:
        key = f"deploytest:{self.run_id}:{n:06d}"
        body = {"env": "prod", "service": f"deploy-load-{n % 7}", "category": "deploy_test",
                "title": f"deploy test write {n}", "priority": "P3", "dedupe_key": key}
        deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
        turn = n % 2
        failed_over = False
        while time.monotonic() < deadline:
            name = self.names[turn % 2]
            try:
                response = clients[name].post("/v1/backlog/items", json=body)
            except httpx.HTTPError as exc:
                self._note(Attempt(name, time.monotonic(), False, type(exc).__name__))
            else:
                now = time.monotonic()
                if response.status_code == 200:
                    item_id = response.json()["item"]["id"]
                    self._note(Attempt(name, now, True), Ack(key, item_id, name, now, failed_over))
                    return
                self._note(Attempt(name, now, False, f"HTTP {response.status_code}"))
                if response.status_code < 500:
                    with self._lock:
                        self.result.refused.append(f"{key}: HTTP {response.status_code} {response.text[:200]}")
                    return
            turn += 1
            failed_over = True
            time.sleep(0.05)
        with self._lock:
            self.result.given_up.append(key)
