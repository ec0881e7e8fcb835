"""What ``/metrics`` and the web dashboard read besides the backlog store.

Two sources, each small and read-only here:

* **The last generation run per env** — written by the generation tool after each real run
  (``services/router/generation/records.py``); the dashboard shows its held-back items and
  ``/metrics`` its held-back count.
* **Governance job runs** — the scheduler's run ledger (``services/router/jobs/runs.py``):
  ``ops/state/job_runs.jsonl`` in single-process mode, the Postgres ``job_runs`` table when the
  scheduler runs on Postgres (the same rule as ``jobs.scheduler.open_ledger``). Jobs run by cron
  through ``run_governance_job.py`` are not recorded there; their last success is unknown here.

Both are files or rows written by other processes, so reads are tolerant (a torn line is
skipped) and cached until the file changes (JSONL, ``file_cache``) or for a minute (Postgres), so a
scrape every 15 s costs a ``stat``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from services.router.errors import StoreUnavailable
from services.router.file_cache import ChangedFileCache
from services.router.jobs.registry import TaskRegistry, default_registry_path, load_registry
from services.router.jobs.runs import RunRecord
from services.router.jobs.scheduler import state_dir as scheduler_state_dir
from services.router.settings import Settings

log = logging.getLogger("backlog.health")

LEDGER_FILE = "job_runs.jsonl"
PG_CACHE_SECONDS = 60.0


# -- governance job runs -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobRuns:
    """Per job: when it last succeeded, and the first slot the ledger knows (how long it is tracked)."""

    last_success: datetime | None
    first_slot: datetime | None


class JobLedgerReader(Protocol):
    def runs(self) -> dict[str, JobRuns]: ...


def summarize_runs(records: list[RunRecord]) -> dict[str, JobRuns]:
    out: dict[str, JobRuns] = {}
    for record in records:
        known = out.get(record.job, JobRuns(None, None))
        success = known.last_success
        if record.status == "succeeded":
            done = record.finished_at or record.slot
            success = done if success is None or done > success else success
        first = record.slot if known.first_slot is None or record.slot < known.first_slot else known.first_slot
        out[record.job] = JobRuns(success, first)
    return out


class JsonlJobLedgerReader:
    """Reads ``job_runs.jsonl`` (last record per job and slot wins), again only when the file changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache = ChangedFileCache(read_ledger)

    def runs(self) -> dict[str, JobRuns]:
        try:
            return self._cache.get(self.path)
        except FileNotFoundError:
            return {}


def read_ledger(path: Path) -> dict[str, JobRuns]:
    latest: dict[tuple[str, datetime], RunRecord] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = RunRecord.from_json(json.loads(line))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a torn last line, or a line from a newer format
            latest[(record.job, record.slot)] = record
    return summarize_runs(list(latest.values()))


PG_RUNS_SQL = (
    "SELECT job, min(slot) AS first_slot, max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success "
    "FROM job_runs GROUP BY job"
)


class PgJobLedgerReader:
    """One short query a minute at most against the ``job_runs`` table; no table yet means no runs."""

    def __init__(self, dsn: str, *, connect_timeout_seconds: float = 3.0, ttl_seconds: float = PG_CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_seconds))
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._cache: tuple[float, dict[str, JobRuns]] | None = None

    def runs(self) -> dict[str, JobRuns]:
        now = self.monotonic()
        if self._cache is not None and now - self._cache[0] < self.ttl_seconds:
            return self._cache[1]
        import psycopg
        from psycopg.rows import dict_row

        try:
            with psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row, connect_timeout=self._timeout,
                                 application_name="backlog-metrics") as conn:
                rows = conn.execute(PG_RUNS_SQL).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
        except psycopg.Error as exc:
            raise StoreUnavailable(f"job ledger: cannot read job_runs ({exc.sqlstate or 'no answer'})",
                                   backend="postgres") from None
        summary = {str(r["job"]): JobRuns(r["last_success"], r["first_slot"]) for r in rows}
        self._cache = (now, summary)
        return summary


def job_ledger_reader(settings: Settings) -> JobLedgerReader:
    """The ledger the scheduler writes: Postgres when configured (as ``open_ledger`` decides), else JSONL."""
    dsn = settings.postgres_dsn_value
    backend = settings.backlog_backend
    if dsn and (backend == "postgres" or backend == "auto"):
        return PgJobLedgerReader(dsn, connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds)
    return JsonlJobLedgerReader(scheduler_state_dir(settings) / LEDGER_FILE)


class TaskRegistryReader:
    """``ops/task_registry.yml`` (or ``$BACKLOG_TASK_REGISTRY``), parsed again only when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int], TaskRegistry] | None = None

    def registry(self) -> TaskRegistry:
        stat = self.path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, load_registry(self.path))
        return self._cache[1]


@dataclass
class HealthSources:
    """Everything the backlog-health metrics read besides the store, built once per app."""

    state_dir: Path
    jobs: JobLedgerReader
    tasks: TaskRegistryReader | None

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthSources:
        return cls(settings.state_dir, job_ledger_reader(settings), TaskRegistryReader(default_registry_path(settings)))

    def job_periods(self) -> dict[str, float]:
        """Each registered job's period in seconds (the shortest gap between its slots)."""
        if self.tasks is None:
            return {}
        return {job.name: job.period().total_seconds() for job in self.tasks.registry().jobs}


def epoch_seconds(value: datetime) -> float:
    return value.astimezone(UTC).timestamp()
