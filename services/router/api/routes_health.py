"""``/healthz``, ``/readyz`` and ``/metrics`` — public, for probes and Prometheus scrapers.

They are public on purpose (see ``auth.PUBLIC_PATHS``): load balancers and scrapers do not
carry API keys, and nothing here reveals item content — only counts, the backend's name and
whether it is degraded.

Request metrics are observed by the request middleware; the backlog-health gauges
(``metrics_backlog``) are computed at scrape time from the store's dashboards, the last
generation records and the job ledger, so they are never stale and cost nothing between
scrapes. Each app has its own ``CollectorRegistry``, so several apps (tests) never collide.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from pydantic import BaseModel
from starlette.responses import Response

from services.router.access.auth import RuntimeDep
from services.router.api import connections
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.api.health_sources import HealthSources
from services.router.api.metrics_backlog import BacklogCollector, EnvIndex, RejectionsCollector, RunsCollector
from services.router.clock import Clock
from services.router.errors import StoreUnavailable
from services.router.signals.rejections import RejectionTally
from services.router.stores.base import BacklogStore

log = logging.getLogger("backlog.metrics")

__all__ = ["ApiMetrics", "EnvIndex", "register"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBE_ID = "bl_000000000000"  # a well-formed id no item has: a cheap round trip to the store


class ApiMetrics:
    """One app's metrics: request counters and latencies, plus the backlog gauges."""

    def __init__(self, store: BacklogStore, *, clock: Clock | None = None, sources: HealthSources | None = None,
                 env_index: EnvIndex | None = None, rejections: RejectionTally | None = None) -> None:
        self.env_index = env_index or EnvIndex(store)
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "status"]
        self.requests = Counter("backlog_http_requests", "HTTP requests by method, route template and status",
                                labels, registry=self.registry)
        self.latency = Histogram("backlog_http_request_duration_seconds",
                                 "HTTP request latency by method, route template and status", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry.register(BacklogCollector(store, clock=clock, env_index=self.env_index))
        self.registry.register(ConnectionsCollector())
        if sources is not None:
            self.registry.register(RunsCollector(sources))
        if rejections is not None:
            self.registry.register(RejectionsCollector(rejections))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children, found once per (method, route template, status): ``labels()``
        # validates and looks them up under a lock, a cost paid on every request otherwise.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, str(status)),
                                              self.latency.labels(method, route, str(status)))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ConnectionsCollector(Collector):
    """Connections ``backlog serve`` closed by its limits (``api/connections.py``), by reason."""

    def collect(self) -> Any:
        family = CounterMetricFamily("backlog_http_connections_closed", "Connections closed by the header deadline "
                                     "or the connection cap, by reason", labels=["reason"])
        for reason in connections.REASONS:
            family.add_metric([reason], connections.CLOSED[reason])
        yield family


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    backend: str
    degraded: bool


async def healthz() -> Response:
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
    # HEAD for load balancers that probe with it; the same answer without a body (not a second
    # operation in the OpenAPI document).
    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse, tags=["health"],
                      summary="Prometheus metrics (text format 0.0.4)")
