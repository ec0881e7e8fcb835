"""Backlog health for Prometheus, computed at scrape time (``/metrics``).

Per env, from the store: items by status and by priority, overdue items (total and by
priority), how long the longest-overdue item has been overdue, and active items by
``meta.weeks_open`` bucket. From ``health_sources``: the held-back count of each env's last
generation run, and per governance job its period and last success — so a Prometheus rule can
say "has not succeeded in 2 periods" per job (``ops/alerts/backlog.rules.yml``).

Job labels are ``governance_job``, not ``job``: Prometheus attaches its own ``job`` label to
every scraped series and would rename ours to ``exported_job``.

Nothing here fails a scrape: a source that cannot be read sets its ``…_error`` gauge to 1, and
the families it would have filled stay empty (so alerts on them resolve rather than lie — the
error gauges have their own rule).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.router.api.health_sources import HealthSources, epoch_seconds
from services.router.clock import Clock, SystemClock
from services.router.domain.enums import ALL_PRIORITIES
from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.generation.records import generation_envs, last_generation
from services.router.signals.rejections import RejectionTally
from services.router.stores.base import BacklogStore

log = logging.getLogger("backlog.metrics")

ENV_CACHE_SECONDS = 60.0
WEEKS_OPEN_CACHE_SECONDS = 60.0
# Label values of backlog_items_by_weeks_open: 1 = first appearance, then consecutive weeks.
WEEKS_OPEN_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4-7", 4, 7), ("8+", 8, None),
)


class EnvIndex:
    """Which envs hold items, for per-env gauges and the web env picker.

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


def weeks_open_bucket(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return None
    return next(label for label, low, high in WEEKS_OPEN_BUCKETS if value >= low and (high is None or value <= high))


def overdue_since(due_date: str) -> datetime:
    """An item becomes overdue at the UTC midnight after its due date (overdue: due_date < today)."""
    return datetime.combine(date.fromisoformat(due_date) + timedelta(days=1), dtime(0), tzinfo=UTC)


class ActiveScan:
    """Active items by weeks_open bucket per env: a full pass over active items, so cached a minute."""

    def __init__(self, store: BacklogStore, *, ttl_seconds: float = WEEKS_OPEN_CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}

    def weeks_open(self, env: str) -> dict[str, int]:
        now = self.monotonic()
        cached = self._cache.get(env)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        counts: Counter[str] = Counter()
        cursor: str | None = None
        while True:
            query = ItemQuery(env=env, active=True, limit=MAX_PAGE, cursor=cursor)
            page = self.store.list(query, fields=("meta.weeks_open",))
            for record in page.items:
                bucket = weeks_open_bucket((record.get("meta") or {}).get("weeks_open"))
                if bucket is not None:
                    counts[bucket] += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        result = {label: counts.get(label, 0) for label, _, _ in WEEKS_OPEN_BUCKETS}
        self._cache[env] = (now, result)
        return result


def overdue_by_priority(store: BacklogStore, env: str, board: dict[str, Any]) -> dict[str, int]:
    """From the dashboard's overdue list when it is complete (the usual case), else counted per priority."""
    if board["overdue_count"] <= len(board["overdue"]):
        counts = Counter(str(o["priority"]) for o in board["overdue"])
        return {p: counts.get(p, 0) for p in ALL_PRIORITIES}
    return {p: store.overdue_ids(env, p, limit=0).total for p in ALL_PRIORITIES}


def gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class BacklogCollector(Collector):
    """Store-derived gauges per env, read at scrape time."""

    def __init__(self, store: BacklogStore, *, clock: Clock | None = None, env_index: EnvIndex | None = None,
                 scan: ActiveScan | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.env_index = env_index or EnvIndex(store)
        self.scan = scan or ActiveScan(store)

    def describe(self) -> Iterator[Metric]:
        """Names only: registering must not read the store (nor fill the env cache)."""
        return iter(self.families())

    @staticmethod
    def families() -> tuple[GaugeMetricFamily, ...]:
        return (
            gauge("backlog_items", "Backlog items by env and status", "env", "status"),
            gauge("backlog_items_by_priority", "Backlog items by env and priority (all statuses)", "env", "priority"),
            gauge("backlog_overdue_items", "Active items past their due date", "env"),
            gauge("backlog_overdue_items_by_priority", "Active items past their due date, by priority",
                  "env", "priority"),
            gauge("backlog_oldest_overdue_age_seconds", "Seconds the longest-overdue active item has been overdue "
                  "(since the UTC midnight after its due date); 0 when nothing is overdue", "env"),
            gauge("backlog_items_by_weeks_open", "Active items by meta.weeks_open (consecutive weeks a generated "
                  "problem has stayed open); items without it are not counted", "env", "weeks_open"),
            gauge("backlog_accepted_items", "Active items whose risk is accepted now (counted in no overdue figure)",
                  "env"),
            gauge("backlog_store_degraded", "1 while the store serves from its fallback backend", "backend"),
            gauge("backlog_metrics_scrape_error", "1 when the backlog gauges could not be read"),
        )

    def collect(self) -> Iterator[Metric]:
        items, by_priority, overdue, overdue_pri, oldest, weeks, accepted, degraded, failed = self.families()
        try:
            state = self.store.status()
            degraded.add_metric([state.backend], 1.0 if state.degraded else 0.0)
            now = self.clock.now()
            for env in self.env_index.envs():
                board = self.store.dashboard(env)
                for status, count in board["status_counts"].items():
                    items.add_metric([env, status], count)
                for priority, count in board["priority_counts"].items():
                    by_priority.add_metric([env, priority], count)
                overdue.add_metric([env], board["overdue_count"])
                accepted.add_metric([env], board.get("accepted_count", 0))
                for priority, count in overdue_by_priority(self.store, env, board).items():
                    overdue_pri.add_metric([env, priority], count)
                first = board["overdue"][0]["due_date"] if board["overdue"] else None
                age = max(0.0, (now - overdue_since(first)).total_seconds()) if first else 0.0
                oldest.add_metric([env], age)
                for bucket, count in self.scan.weeks_open(env).items():
                    weeks.add_metric([env, bucket], count)
            failed.add_metric([], 0.0)
        except Exception:  # a scrape must answer even when the store does not
            log.warning("backlog gauges unavailable", exc_info=True)
            failed.add_metric([], 1.0)
        yield from (items, by_priority, overdue, overdue_pri, oldest, weeks, accepted, degraded, failed)


class RunsCollector(Collector):
    """Generation and governance-job gauges from ``HealthSources`` (files and the job ledger)."""

    def __init__(self, sources: HealthSources) -> None:
        self.sources = sources

    def describe(self) -> Iterator[Metric]:
        return iter(self.families())

    @staticmethod
    def families() -> tuple[GaugeMetricFamily, ...]:
        return (
            gauge("backlog_generation_held_back_items", "Candidates the last generation run left out "
                  "(max_items_per_run), per env", "env"),
            gauge("backlog_generation_last_run_timestamp_seconds", "When the env's last generation run wrote "
                  "(Unix time)", "env"),
            gauge("backlog_job_period_seconds", "A governance job's period: the shortest gap between its "
                  "scheduled slots (ops/task_registry.yml)", "governance_job"),
            gauge("backlog_job_last_success_timestamp_seconds", "When the job last succeeded (Unix time, from "
                  "the scheduler's run ledger); absent until it has", "governance_job"),
            gauge("backlog_job_first_run_timestamp_seconds", "The job's earliest slot in the run ledger (Unix "
                  "time): how long its runs have been recorded", "governance_job"),
            gauge("backlog_run_metrics_error", "1 when the generation records, the task registry or the job "
                  "ledger could not be read"),
        )

    def collect(self) -> Iterator[Metric]:
        held, last_gen, period, success, first, failed = self.families()
        ok = True
        try:
            for env in generation_envs(self.sources.state_dir):
                record = last_generation(self.sources.state_dir, env)
                if record is None:
                    continue
                held.add_metric([env], record.held_back_count)
                if record.ran_at is not None:
                    last_gen.add_metric([env], epoch_seconds(record.ran_at))
        except Exception:
            log.warning("generation records unavailable", exc_info=True)
            ok = False
        try:
            periods = self.sources.job_periods()
            runs = self.sources.jobs.job_runs()
            for name, seconds in sorted(periods.items()):
                period.add_metric([name], seconds)
                known = runs.get(name)
                if known is not None and known.last_success is not None:
                    success.add_metric([name], epoch_seconds(known.last_success))
                if known is not None and known.first_slot is not None:
                    first.add_metric([name], epoch_seconds(known.first_slot))
        except Exception:
            log.warning("governance job runs unavailable", exc_info=True)
            ok = False
        failed.add_metric([], 0.0 if ok else 1.0)
        yield from (held, last_gen, period, success, first, failed)


class RejectionsCollector(Collector):
    """``backlog_signals_rejected_total{kind,reason}`` from the runtime's ``RejectionTally``."""

    def __init__(self, tally: RejectionTally) -> None:
        self.tally = tally

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("backlog_signals_rejected", "Signals rejected at intake (any route), by "
                                     "signal kind and reason code", labels=["kind", "reason"])
        for (kind, reason), count in sorted(self.tally.counts().items()):
            family.add_metric([kind, reason], count)
        yield family
