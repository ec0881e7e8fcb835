"""The run ledger — the one module that writes and reads governance job runs.

One record per (job, scheduled slot). A ledger answers the scheduler's questions — which slot did
any process record last, which slots are still marked running, what happened to a prerequisite's
slot — and hands out *claims*: the right to run one slot. ``claim()`` yields ``None`` when another
process holds the slot or it is already finished; a claim that is never finished (the process
died) leaves the record ``running``, which the next claimant treats as stale and runs again.

It also answers what ``/metrics`` asks (``job_runs()``: each job's last success and first slot).

Backends: ``pg_ledger.PgRunLedger`` (several processes on one Postgres) and ``JsonlRunLedger``
here (one process per host, enforced with a lock; records in ``ops/state/job_runs.jsonl``);
``open_ledger`` is the one place that chooses between them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from services.router.errors import Conflict, ValidationFailed
from services.router.files import ChangedFileCache, FileLock
from services.router.jobs.run_records import (
    FINISHED,
    Claim,
    JobRuns,
    RunLedger,
    RunRecord,
    Status,
    result_json,
    summarize,
    summarize_runs,
)
from services.router.settings import Settings

# The one module callers import for runs: the records and protocols are ``run_records``' (shared
# with ``pg_ledger``), re-exported here.
__all__ = ["Claim", "JobRuns", "JsonlRunLedger", "RunLedger", "RunRecord", "Status", "open_ledger", "read_records",
           "result_json", "summarize", "summarize_runs"]


class JsonlRunLedger:
    """Runs of a single scheduler process, appended to a JSONL file (last record per slot wins)."""

    mode = "jsonl"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LEDGER_FILE
        self.lock_path = state_dir / "scheduler.lock"
        self._host_lock: FileLock | None = None
        self._records: dict[tuple[str, datetime], RunRecord] = {}
        self._summaries: ChangedFileCache[dict[str, JobRuns]] = ChangedFileCache(_summarize_file)

    def describe(self) -> str:
        return f"single-process mode (JSONL ledger {self.path}, lock {self.lock_path})"

    def acquire_single_instance(self) -> None:
        """Refuse a second scheduler on this host: without Postgres, two would run every slot twice."""
        lock = FileLock(self.lock_path)
        if not lock.try_acquire(f"{os.getpid()}\n"):
            holder = lock.holder()
            lock.close()
            raise Conflict(
                f"another scheduler is already running on this host (pid {holder}, lock {self.lock_path}); "
                "without Postgres only one may run — use BACKLOG_BACKEND=postgres to run several",
                lock=str(self.lock_path),
            )
        self._host_lock = lock
        self._load()

    def _load(self) -> None:
        self._records.clear()
        with suppress(FileNotFoundError):
            self._records.update(read_records(self.path.read_bytes()))

    def _append(self, record: RunRecord, result: Any = None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = record.to_json()
        stored = result_json(result)
        if stored is not None:
            data["result"] = json.loads(stored)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._records[(record.job, record.slot)] = record

    def last_slot(self, job: str) -> datetime | None:
        return max((slot for name, slot in self._records if name == job), default=None)

    def running_slots(self, job: str, since: datetime) -> list[datetime]:
        return sorted(r.slot for r in self._records.values() if r.job == job and r.status == "running"
                      and r.slot >= since)

    def get(self, job: str, slot: datetime) -> RunRecord | None:
        return self._records.get((job, slot))

    @contextmanager
    def claim(self, record: RunRecord) -> Iterator[Claim | None]:
        existing = self._records.get((record.job, record.slot))
        if existing is not None and existing.status in FINISHED:
            yield None
            return
        # We hold the host lock: a 'running' record left behind is from a process that died.
        attempts = existing.attempts + 1 if existing is not None else 1
        running = replace(record, status="running", attempts=attempts)
        self._append(running)
        yield _JsonlClaim(self, running)

    def skip(self, record: RunRecord) -> bool:
        existing = self._records.get((record.job, record.slot))
        if existing is not None and existing.status != "running":
            return False
        summary = record.summary
        if existing is not None:
            summary = f"{summary} (its run by {existing.host} pid {existing.pid} died)"
        self._append(replace(record, status="skipped", attempts=existing.attempts if existing else 0,
                             summary=summary))
        return True

    def reload(self) -> None:
        """Re-read the file when another process may have written (the router, without the host lock)."""
        if self._host_lock is None:
            self._load()

    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        if self._host_lock is None:
            self._load()  # `backlog jobs history` reads without taking the scheduler's lock
        rows = [r for r in self._records.values() if job is None or r.job == job]
        return sorted(rows, key=lambda r: (r.slot, r.job), reverse=True)[:limit]

    def job_runs(self) -> dict[str, JobRuns]:
        """What ``/metrics`` shows, from the file as any process left it (parsed again only when it changed)."""
        try:
            return self._summaries.get(self.path)
        except FileNotFoundError:
            return {}

    def close(self) -> None:
        if self._host_lock is not None:
            self._host_lock.close()
            self._host_lock = None


LEDGER_FILE = "job_runs.jsonl"


def read_records(data: bytes) -> dict[tuple[str, datetime], RunRecord]:
    """The last record per (job, slot); torn or foreign lines are skipped (a crash, a newer format)."""
    records: dict[tuple[str, datetime], RunRecord] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = RunRecord.from_json(json.loads(line))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        records[(record.job, record.slot)] = record
    return records


def _summarize_file(_: Path, data: bytes) -> dict[str, JobRuns]:
    return summarize_runs(read_records(data).values())


def open_ledger(settings: Settings, *, state: Path | None = None, check_schema: bool = True) -> RunLedger:
    """The one choice of ledger: Postgres when configured (several processes), else JSONL (one per host).

    With ``BACKLOG_BACKEND=auto`` and a DSN the scheduler insists on Postgres and does not fall back
    to JSONL as the stores do: a host quietly scheduling on its own would run slots twice. Readers
    that must not fail while the table is missing (``/metrics``) pass ``check_schema=False``.
    """
    dsn = settings.postgres_dsn_value
    backend = settings.backlog_backend
    if backend == "postgres" or (backend == "auto" and dsn):
        if not dsn:
            raise ValidationFailed("BACKLOG_BACKEND=postgres needs BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)",
                                   field="BACKLOG_POSTGRES_DSN")
        from services.router.jobs.pg_ledger import PgRunLedger

        ledger = PgRunLedger(dsn, connect_timeout_seconds=settings.backlog_pg_connect_timeout_seconds)
        if check_schema:
            ledger.check_schema()
        return ledger
    return JsonlRunLedger(state or settings.state_dir)


@dataclass
class _JsonlClaim:
    ledger: JsonlRunLedger
    record: RunRecord

    def finish(self, status: Status, *, finished_at: datetime, duration_ms: int, summary: str | None,
               error: str | None, result: Any) -> RunRecord:
        done = replace(self.record, status=status, finished_at=finished_at, duration_ms=duration_ms,
                       summary=summary, error=error)
        self.ledger._append(done, result)
        self.record = done
        return done
