"""``/healthz``, ``/readyz`` and ``/metrics`` — public, for probes and Prometheus scrapers.

They are public on purpose (see ``auth.PUBLIC_PATHS``): load balancers and scrapers do not
carry API keys, and nothing here reveals item content — only counts, the backend's name and
whether it is degraded.

Request metrics are observed by the request middleware; the backlog gauges are computed at
scrape time from the store's dashboards, so they are never stale and cost nothing between
scrapes. Each app has its own ``CollectorRegistry``, so several apps (tests) never collide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from pydantic import BaseModel
from starlette.responses import Response

from services.router.api.auth import RuntimeDep
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.errors import StoreUnavailable
from services.router.stores.base import BacklogStore

log = logging.getLogger("backlog.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ENV_CACHE_SECONDS = 60.0
PROBE_ID = "bl_000000000000"  # a well-formed id no item has: a cheap round trip to the store


class EnvIndex:
    """Which envs hold items, for per-env gauges.

    Uses the store's ``envs()`` when it has one (a ``SELECT DISTINCT`` on Postgres); otherwise
    pages through the items once a minute at most, so a scrape stays cheap.
    """

    def __init__(self, store: BacklogStore, *, ttl_seconds: float = ENV_CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._cached: tuple[float, list[str]] | None = None

    def envs(self) -> list[str]:
        own = getattr(self.store, "envs", None)
        if callable(own):
            return sorted(str(e) for e in own())
        now = self.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl_seconds:
            return self._cached[1]
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = self.store.list(ItemQuery(limit=MAX_PAGE, cursor=cursor))
            found.update(r["env"] for r in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        self._cached = (now, sorted(found))
        return self._cached[1]


class BacklogCollector(Collector):
    """Backlog gauges per env, status and priority, and the overdue count, at scrape time."""

    def __init__(self, store: BacklogStore) -> None:
        self.store = store
        self.env_index = EnvIndex(store)

    def describe(self) -> Iterator[Metric]:
        """Names only: registering must not read the store (nor fill the env cache)."""
        return iter(self.families())

    @staticmethod
    def families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("backlog_items", "Backlog items by env and status", labels=["env", "status"]),
            GaugeMetricFamily("backlog_items_by_priority", "Backlog items by env and priority (all statuses)",
                              labels=["env", "priority"]),
            GaugeMetricFamily("backlog_overdue_items", "Active items past their due date", labels=["env"]),
            GaugeMetricFamily("backlog_store_degraded", "1 while the store serves from its fallback backend",
                              labels=["backend"]),
            GaugeMetricFamily("backlog_metrics_scrape_error", "1 when the backlog gauges could not be read"),
        )

    def collect(self) -> Iterator[Metric]:
        items, by_priority, overdue, degraded, failed = self.families()
        try:
            state = self.store.status()
            degraded.add_metric([state.backend], 1.0 if state.degraded else 0.0)
            for env in self.env_index.envs():
                board = self.store.dashboard(env)
                for status, count in board["status_counts"].items():
                    items.add_metric([env, status], count)
                for priority, count in board["priority_counts"].items():
                    by_priority.add_metric([env, priority], count)
                overdue.add_metric([env], board["overdue_count"])
            failed.add_metric([], 0.0)
        except Exception:  # a scrape must answer even when the store does not
            log.warning("backlog gauges unavailable", exc_info=True)
            failed.add_metric([], 1.0)
        yield from (items, by_priority, overdue, degraded, failed)


class ApiMetrics:
    """One app's metrics: request counters and latencies, plus the backlog gauges."""

    def __init__(self, store: BacklogStore) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "status"]
        self.requests = Counter("backlog_http_requests", "HTTP requests by method, route template and status",
                                labels, registry=self.registry)
        self.latency = Histogram("backlog_http_request_duration_seconds",
                                 "HTTP request latency by method, route template and status", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(BacklogCollector(store))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    backend: str
    degraded: bool


def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


def readyz(runtime: RuntimeDep) -> Response:
    """Degraded (Auto on its JSONL fallback) is still ready: it serves every request, so a
    load balancer should keep sending traffic; the body says so for dashboards and alerts."""
    store = runtime.store
    try:
        state = store.status()
        store.get(PROBE_ID)
    except StoreUnavailable:
        raise
    except Exception as exc:
        log.warning("readiness probe failed: %s", type(exc).__name__, exc_info=True)
        raise StoreUnavailable("store unavailable", backend=getattr(store, "backend", "unknown")) from None
    return OrjsonResponse({"status": "degraded" if state.degraded else "ready", "backend": state.backend,
                           "degraded": state.degraded})


def metrics(request: Request) -> Response:
    collected = cast(ApiMetrics, request.app.state.metrics)
    return Response(collected.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


def register(app: FastAPI) -> None:
    """Public routes: no guard, listed in ``auth.PUBLIC_PATHS``."""
    app.add_api_route("/healthz", healthz, methods=["GET"], response_model=Health, tags=["health"],
                      summary="The process is alive")
    app.add_api_route("/readyz", readyz, methods=["GET"], response_model=Ready, tags=["health"],
                      responses=error_docs(503),
                      summary="The store is reachable; names the active backend and whether it is degraded")
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse, tags=["health"],
                      summary="Prometheus metrics (text format 0.0.4)")
