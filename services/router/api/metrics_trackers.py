"""Tracker sync for Prometheus, read at scrape time from the link store (``/metrics``).

Per configured tracker: ``backlog_tracker_pending`` (remote work outstanding after the last run),
``backlog_tracker_parked`` (items refused for good, waiting for a person),
``backlog_tracker_last_success_timestamp_seconds`` and ``backlog_tracker_requests_total{outcome}``
(ok, retryable, rate_limited, refused). The request counts are stored with the tracker's state
by every process that syncs (router, CLI, scheduler), so the counter covers them all and
survives restarts. No trackers file: the families are served empty. A link store that cannot be
read sets ``backlog_tracker_metrics_error`` and never fails the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.router.clock import parse_utc
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.trackers.config import trackers_config

log = logging.getLogger("backlog.metrics")


class TrackerCollector(Collector):
    def __init__(self, store: BacklogStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def describe(self) -> Iterator[Metric]:
        return iter(self.families())

    @staticmethod
    def families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                            GaugeMetricFamily]:
        return (
            GaugeMetricFamily("backlog_tracker_pending", "Remote work outstanding after the tracker's last sync run "
                              "(items to create, update or comment on, and scheduled pulls)", labels=["tracker"]),
            GaugeMetricFamily("backlog_tracker_parked", "Items whose remote work the tracker refused for good "
                              "(parked with a reason; see backlog tracker status)", labels=["tracker"]),
            GaugeMetricFamily("backlog_tracker_last_success_timestamp_seconds", "When the tracker's last sync run "
                              "completed (Unix time); absent until one has", labels=["tracker"]),
            CounterMetricFamily("backlog_tracker_requests", "Requests sent to the tracker by sync runs, by outcome "
                                "(ok, retryable, rate_limited, refused)", labels=["tracker", "outcome"]),
            GaugeMetricFamily("backlog_tracker_metrics_error", "1 when the tracker sync state could not be read"),
        )

    def collect(self) -> Iterator[Metric]:
        pending, parked, success, requests, failed = self.families()
        try:
            config = trackers_config(self.settings)
            if config is not None:
                links = link_store_for(self.store, self.settings)
                for name in sorted(config.trackers):
                    state = links.tracker_state(name)
                    pending.add_metric([name], float(state.get("pending") or 0))
                    parked.add_metric([name], float(sum(1 for w in links.work(name) if w.parked)))
                    if state.get("last_success_at"):
                        success.add_metric([name], parse_utc(state["last_success_at"]).timestamp())
                    for outcome, count in sorted((state.get("requests") or {}).items()):
                        requests.add_metric([name, outcome], float(count))
            failed.add_metric([], 0.0)
        except Exception:  # a scrape must answer even when the link store does not
            log.warning("tracker sync gauges unavailable", exc_info=True)
            failed.add_metric([], 1.0)
        yield from (pending, parked, success, requests, failed)
