"""Runs of cron-driven jobs, recorded by the router so ``/metrics`` knows each job's last success.

The in-process ``backlog scheduler`` records its runs in the run ledger itself. Under cron, the
runner (``run_governance_job.py --job NAME``) sends ``"job": NAME`` with its request; the router
then records the call in the same ledger, under the job's scheduled slot (the latest cron time
at or before now), so ``backlog_job_last_success_timestamp_seconds`` and the
"governance job has not succeeded in 2 periods" alert work for cron deployments too.

Recording never decides the outcome: an unknown job name, a tool/action that differs from the
registry's, a dry run, or a ledger that cannot be opened means the action runs unrecorded (with
a warning for the mismatches), because the job's own work matters more than its bookkeeping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from services.router.clock import Clock
from services.router.errors import BacklogError
from services.router.jobs.ledger import RunLedger, RunRecord, open_ledger, summarize
from services.router.jobs.registry import Job, TaskRegistry, default_registry_path, load_registry
from services.router.jobs.slots import latest_slot_at_or_before
from services.router.settings import Settings

log = logging.getLogger("backlog.jobs")


class CronRunRecorder:
    """Opened lazily on the first job call; one per router process (writes are serialized)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._ledger: RunLedger | None = None
        self._registry: TaskRegistry | None = None

    def run(self, job_name: str, tool: str, action: str, params: dict[str, Any], execute: Callable[[], Any]) -> Any:
        job = self._job(job_name, tool, action)
        if job is None or params.get("dry_run") is True:
            return execute()
        with self._lock:
            ledger = self._open()
            if ledger is None:
                return execute()
            return self._recorded(ledger, job, execute)

    def _recorded(self, ledger: RunLedger, job: Job, execute: Callable[[], Any]) -> Any:
        started = self.clock.now()
        slot = latest_slot_at_or_before(job.schedule, started)
        record = RunRecord(job=job.name, slot=slot, status="running", tool=job.tool, action=job.action,
                           host=socket.gethostname(), pid=os.getpid(), started_at=started)
        with ledger.claim(record) as claim:
            began = time.monotonic()
            status: Literal["succeeded", "failed"] = "failed"
            error: str | None = None
            result: Any = None
            try:
                result = execute()
                status = "succeeded"
                return result
            except BacklogError as exc:
                error = exc.message
                raise
            except Exception as exc:
                error = f"{type(exc).__name__} (see the router's log)"
                raise
            finally:
                if claim is not None:  # None: the slot already finished (a re-run) — run, do not re-record
                    claim.finish(status, finished_at=self.clock.now(),
                                 duration_ms=int((time.monotonic() - began) * 1000),
                                 summary=summarize(result) if status == "succeeded" else None,
                                 error=error, result=result)

    def _job(self, name: str, tool: str, action: str) -> Job | None:
        try:
            if self._registry is None:
                self._registry = load_registry(default_registry_path(self.settings))
            job = self._registry.get(name)
        except BacklogError as exc:
            log.warning("job %r: not recorded (%s)", name, exc.message)
            return None
        except KeyError:
            log.warning("job %r is not in the task registry: not recorded", name)
            return None
        if (job.tool, job.action) != (tool, action):
            log.warning("job %r runs %s.%s in the registry, not %s.%s: not recorded",
                        name, job.tool, job.action, tool, action)
            return None
        return job

    def _open(self) -> RunLedger | None:
        if self._ledger is None:
            try:
                self._ledger = open_ledger(self.settings)
            except BacklogError as exc:
                log.warning("job runs not recorded: %s", exc.message)
                return None
        self._ledger.reload()
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
