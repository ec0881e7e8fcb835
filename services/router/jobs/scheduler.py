"""``backlog scheduler``: the registry's jobs on their schedules, in-process, for hosts without cron.

Each pass (``tick``) asks, for every job, which cron slots came due since the last slot any
process recorded, adds slots still marked running (their holder may have died), and handles them
oldest first across all jobs — so the 06:00 digest is handled before the 06:20 generation:

* a slot within the job's catch-up window is claimed in the ledger and run once, as the
  ``scheduler`` actor, through ``Runtime.execute`` (the same tool code the router runs);
* an older slot is recorded as skipped, with how late it was;
* a slot whose prerequisite's slot (``requires``) is still running waits for the next pass; when
  the prerequisite failed or never ran, the job runs anyway and a failure names the prerequisite.

The ledger decides who runs a slot (``pg_ledger``: any number of processes on one Postgres;
``ledger.JsonlRunLedger``: one process per host). Time comes from an injected clock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from services.router.clock import Clock, iso_z
from services.router.errors import BacklogError, ValidationFailed
from services.router.jobs.ledger import RunLedger, RunRecord, summarize
from services.router.jobs.registry import SCHEDULER_ACTOR, Job, TaskRegistry
from services.router.jobs.slots import (
    MAX_LOOKBACK,
    describe_lateness,
    is_too_late,
    latest_slot_at_or_before,
    scan_floor,
    slots_between,
)
from services.router.runtime import Runtime

log = logging.getLogger("backlog.scheduler")

Outcome = Literal["succeeded", "failed", "skipped", "busy", "waiting"]
DEFAULT_POLL_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    job: str
    slot: datetime
    outcome: Outcome
    record: RunRecord | None = None


class Scheduler:
    def __init__(
        self, *, registry: TaskRegistry, runtime: Runtime, ledger: RunLedger, clock: Clock | None = None,
        jobs: Sequence[str] | None = None, host: str | None = None, pid: int | None = None,
    ) -> None:
        unknown = sorted(set(jobs or ()) - set(registry.names))
        if unknown:
            raise ValidationFailed(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(registry.names)}",
                                   field="jobs")
        self.registry = registry
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or runtime.clock
        self.jobs = [j for j in registry.jobs if not jobs or j.name in jobs]
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()

    # -- one pass ------------------------------------------------------------------------------

    def due(self, now: datetime) -> list[tuple[datetime, Job]]:
        """Every slot to handle now, oldest first (ties in registry order)."""
        found: dict[tuple[datetime, str], Job] = {}
        for job in self.jobs:
            floor = scan_floor(self.ledger.last_slot(job.name), now, job.catch_up)
            for slot in slots_between(job.schedule, floor, now):
                found[(slot, job.name)] = job
            for slot in self.ledger.running_slots(job.name, since=now - MAX_LOOKBACK):
                found[(slot, job.name)] = job
        order = {job.name: i for i, job in enumerate(self.jobs)}
        return [(slot, job) for (slot, _), job in sorted(found.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))]

    def tick(self) -> list[SlotOutcome]:
        now = self.clock.now()
        outcomes: list[SlotOutcome] = []
        for slot, job in self.due(now):
            if is_too_late(slot, now, job.catch_up):
                outcomes.append(self.skip(job, slot, now))
            else:
                outcomes.append(self.run_slot(job, slot))
        return outcomes

    def skip(self, job: Job, slot: datetime, now: datetime) -> SlotOutcome:
        reason = describe_lateness(slot, now, job.catch_up)
        record = self._record(job, slot, "skipped", finished_at=now, summary=reason)
        if self.ledger.skip(record):
            log.warning("%s slot %s skipped: %s", job.name, iso_z(slot), reason)
            return SlotOutcome(job.name, slot, "skipped", record)
        return SlotOutcome(job.name, slot, "busy")

    def run_slot(self, job: Job, slot: datetime) -> SlotOutcome:
        """Claim the slot and run it; ``busy`` when another process has it or it is finished."""
        waiting, notes = self.prerequisites(job, slot)
        if waiting:
            log.info("%s slot %s waits for %s", job.name, iso_z(slot), waiting)
            return SlotOutcome(job.name, slot, "waiting")
        started_at = self.clock.now()
        with self.ledger.claim(self._record(job, slot, "running", started_at=started_at)) as claim:
            if claim is None:
                return SlotOutcome(job.name, slot, "busy")
            log.info("%s slot %s started (attempt %d) on %s pid %d", job.name, iso_z(slot),
                     claim.record.attempts, self.host, self.pid)
            began = time.monotonic()
            status: Literal["succeeded", "failed"] = "succeeded"
            error: str | None = None
            result: Any
            try:
                result = self.runtime.execute(SCHEDULER_ACTOR, job.tool, job.action, job.params_for(slot))
            except BacklogError as exc:
                status, error = "failed", " — ".join([exc.message, *notes])
                result = {**exc.to_dict(), "error": error, "prerequisites": notes}
            except Exception as exc:  # a bug in a tool must not stop the scheduler
                log.exception("%s slot %s crashed", job.name, iso_z(slot))
                status, error = "failed", " — ".join([f"{type(exc).__name__}: {exc}", *notes])
                result = {"error": error, "prerequisites": notes}
            duration_ms = int((time.monotonic() - began) * 1000)
            record = claim.finish(status, finished_at=self.clock.now(), duration_ms=duration_ms,
                                  summary=summarize(result) if status == "succeeded" else None,
                                  error=error, result=result)
        level = logging.INFO if status == "succeeded" else logging.ERROR
        log.log(level, "%s slot %s %s in %d ms: %s", job.name, iso_z(slot), status, duration_ms,
                error or record.summary)
        return SlotOutcome(job.name, slot, status, record)

    def prerequisites(self, job: Job, slot: datetime) -> tuple[str | None, list[str]]:
        """(a prerequisite still running, or None; notes on prerequisites that did not succeed)."""
        notes: list[str] = []
        for name in job.requires:
            before = self.registry.get(name)
            their_slot = latest_slot_at_or_before(before.schedule, slot)
            record = self.ledger.get(name, their_slot)
            where = f"prerequisite {name} (slot {iso_z(their_slot)})"
            if record is None:
                notes.append(f"{where} has no run recorded by the scheduler")
            elif record.status == "running" and not is_too_late(slot, self.clock.now(), job.catch_up):
                return name, notes
            elif record.status != "succeeded":
                notes.append(f"{where} {record.status}: {record.error or record.summary or 'no detail'}")
        return None, notes

    def _record(self, job: Job, slot: datetime, status: Any, **fields: Any) -> RunRecord:
        base = RunRecord(job=job.name, slot=slot, status=status, tool=job.tool, action=job.action,
                         host=self.host, pid=self.pid)
        return replace(base, **fields)

    # -- the loop ------------------------------------------------------------------------------

    def serve(self, *, poll_seconds: float = DEFAULT_POLL_SECONDS, stop: threading.Event | None = None,
              until: datetime | None = None) -> None:
        """Tick until ``stop`` is set (SIGTERM) or the clock passes ``until``; a failed pass is retried."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except BacklogError as exc:  # e.g. Postgres down: nothing runs until the ledger answers
                log.error("scheduler pass failed, retrying in %.0fs: %s", poll_seconds, exc.message)
            if until is not None and self.clock.now() >= until:
                return
            stop.wait(poll_seconds)
