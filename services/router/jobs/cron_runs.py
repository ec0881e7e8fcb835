"""Runs of cron-driven jobs, recorded by the router so ``/metrics`` knows each job's last success.

The in-process ``backlog scheduler`` records its runs in the run ledger itself. Under cron, the
runner (``run_governance_job.py --job NAME``) sends ``"job": NAME`` with its request; the router
then records the call in the same ledger, under the job's scheduled slot (the latest cron time
at or before now), so ``backlog_job_last_success_timestamp_seconds`` and the
"governance job has not succeeded in 2 periods" alert work for cron deployments too.

A call that names a job must be that job: an unknown name, or a tool, action or params that
differ from the registry's entry, is refused (409 naming the difference) before anything runs,
because recording a different call under the job's slot would move its last-success gauge and
silence ``BacklogGovernanceJobNotSucceeding`` while the real job never ran. Whether a call is a
dry run is read from its validated params only (``dry_run`` is a JSON boolean): a dry run runs
unrecorded. The registry is read again when its file changes. A registry or ledger that cannot
be read leaves the action to run unrecorded (with a warning): the job's own work matters more
than its bookkeeping, and the missing success shows on ``/metrics`` as it should.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from services.router.clock import Clock
from services.router.errors import BacklogError, Conflict
from services.router.jobs.ledger import RunLedger, RunRecord, open_ledger, summarize
from services.router.jobs.registry import Job, default_registry_path, load_registry
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

    def run(self, job_name: str, tool: str, action: str, params: BaseModel, execute: Callable[[], Any]) -> Any:
        """Run ``execute`` (the call, with these validated ``params``) as job ``job_name``'s slot.

        Raises ``Conflict`` (409) when the call is not the registry's job; nothing has run then.
        """
        job = self._job(job_name)
        if job is not None:
            check_same_call(job, tool, action, params)
        if job is None or getattr(params, "dry_run", False) is True:
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

    def _job(self, name: str) -> Job | None:
        """The registry's job, or None when the registry cannot be read; an unknown name is refused."""
        path = default_registry_path(self.settings)
        try:
            registry = load_registry(path)  # parsed again only when the file changed (config_file)
        except BacklogError as exc:
            log.warning("job call not recorded: %s", exc.message)
            return None
        try:
            return registry.get(name)
        except KeyError:
            raise Conflict(f"no job {name!r} in the task registry; a call that is not a scheduled job must not "
                           "name one (run_governance_job.py without --job)", job=name, jobs=registry.names) from None

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


def check_same_call(job: Job, tool: str, action: str, params: BaseModel) -> None:
    """Refuse a call that is not ``job`` as the registry declares it (``dry_run`` and the slot param aside)."""
    if (job.tool, job.action) != (tool, action):
        raise Conflict(f"job {job.name} runs {job.call} in the task registry, not {tool}.{action}",
                       job=job.name, registry_call=job.call, call=f"{tool}.{action}")
    ignored = {"dry_run", *([job.slot_param] if job.slot_param else [])}
    declared = type(params).model_validate(job.params).model_dump(mode="json", exclude=ignored)
    sent = params.model_dump(mode="json", exclude=ignored)
    differing = sorted(name for name in declared.keys() | sent.keys() if declared.get(name) != sent.get(name))
    if differing:
        described = "; ".join(f"{name}: {declared.get(name)!r} in the registry, {sent.get(name)!r} sent"
                              for name in differing)
        raise Conflict(f"job {job.name}'s params differ from the task registry's ({described})",
                       job=job.name, differing=differing)
