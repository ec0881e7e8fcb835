"""Kill router-a and one scheduler under a write load, then count what the stack kept.

* every acknowledged write is in Postgres exactly once, with the id it was acknowledged with;
* router-b answered every request sent to it while router-a was down;
* each scheduled slot in the window ran exactly once: the ledger (``job_runs``) says succeeded,
  and the two schedulers' logs hold exactly one ``succeeded`` line for it between them; the
  slots due while scheduler-1 was dead were run by scheduler-2.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.router.jobs.registry import TaskRegistry
from services.router.jobs.slots import slots_between
from tests.deploy.load import LoadResult, WriteLoad
from tests.deploy.stack import SCHEDULER_POLL_SECONDS, TICK_JOBS, Stack, deploy_test_registry

LOAD_BEFORE_KILL_SECONDS = 8.0
ROUTER_DOWN_SECONDS = 12.0
LOAD_AFTER_RESTART_SECONDS = 8.0
TAKEOVER_TIMEOUT_SECONDS = 100.0
# The scheduler's line when a run of a slot has finished (one per run; a run cut by a kill has none).
FINISHED_LINE = re.compile(r"backlog\.scheduler: (\S+) slot (\S+) (?:succeeded|failed) in ")


@dataclass
class KillFigures:
    load: LoadResult
    kill_at: float = 0.0  # time.monotonic()
    router_back_at: float = 0.0
    router_ready_seconds: float = 0.0
    lost: list[str] = field(default_factory=list)
    wrong_id: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    committed_unacked: int = 0
    slots_expected: int = 0
    slots_ran_once: int = 0
    ledger_slots: int = 0
    ledger_ran_once: int = 0
    slots_failed: int = 0
    slot_problems: list[str] = field(default_factory=list)
    slots_taken_over: int = 0
    slots_retried: int = 0

    @property
    def b_failures_while_a_down(self) -> int:
        return len(self.load.failures_of("router-b", self.kill_at, self.router_back_at))

    @property
    def b_acks_while_a_down(self) -> int:
        return len(self.load.acks_of("router-b", self.kill_at, self.router_back_at))

    @property
    def a_acks_after_restart(self) -> int:
        return len(self.load.acks_of("router-a", self.router_back_at, float("inf")))


def run(stack: Stack, run_id: str, window_start: datetime) -> KillFigures:
    """``window_start``: when the stack was ready; the slots due from then on are counted."""
    load = WriteLoad({"router-a": stack.url("router-a"), "router-b": stack.url("router-b")},
                     stack.keys["ONCALL_API_KEY"], run_id)
    figures = KillFigures(load=load.result)
    load.start()
    time.sleep(LOAD_BEFORE_KILL_SECONDS)
    figures.kill_at = time.monotonic()
    killed_utc = datetime.now(UTC)
    stack.kill("router-a")
    stack.kill("scheduler-1")
    time.sleep(ROUTER_DOWN_SECONDS)
    stack.start("router-a")
    figures.router_ready_seconds = stack.wait_router("router-a")
    figures.router_back_at = time.monotonic()
    time.sleep(LOAD_AFTER_RESTART_SECONDS)
    load.stop()

    check_writes(stack, run_id, figures)
    wait_for_takeover(stack, killed_utc)
    logs_before_restart = stack.logs("scheduler-1")
    stack.start("scheduler-1")
    time.sleep(SCHEDULER_POLL_SECONDS + 3)
    # Slots due up to a little over one poll ago have been claimed and finished by now.
    window_end = datetime.now(UTC) - timedelta(seconds=SCHEDULER_POLL_SECONDS + 2)
    logs = logs_before_restart + stack.logs("scheduler-1") + stack.logs("scheduler-2")
    check_slots(stack, figures, window_start, window_end, killed_utc, logs)
    return figures


def check_writes(stack: Stack, run_id: str, figures: KillFigures) -> None:
    prefix = f"deploytest:{run_id}:"
    rows = stack.psql(f"SELECT dedupe_key, id FROM backlog_items WHERE dedupe_key LIKE '{prefix}%'")
    by_key: dict[str, list[str]] = {}
    for key, item_id in rows:
        by_key.setdefault(key, []).append(item_id)
    created = Counter(row[0] for row in stack.psql(
        "SELECT e.item_id FROM backlog_events e JOIN backlog_items i ON i.id = e.item_id "
        f"WHERE i.dedupe_key LIKE '{prefix}%' AND e.type = 'created'"))
    acked = {ack.key: ack.item_id for ack in figures.load.acks}
    for key, item_id in acked.items():
        ids = by_key.get(key, [])
        if not ids:
            figures.lost.append(key)
        elif ids != [item_id]:
            figures.wrong_id.append(f"{key}: acknowledged {item_id}, stored {ids}")
        if len(ids) > 1 or any(created[i] != 1 for i in ids):
            figures.duplicated.append(f"{key}: {len(ids)} rows, created events {[created[i] for i in ids]}")
    figures.committed_unacked = len(set(by_key) - set(acked))


def ledger(stack: Stack, since: datetime) -> list[tuple[str, datetime, str, int, str]]:
    rows = stack.psql("SELECT job, extract(epoch FROM slot)::bigint, status, attempts, coalesce(host, '') "
                      f"FROM job_runs WHERE slot > to_timestamp({since.timestamp()}) ORDER BY slot, job")
    return [(job, datetime.fromtimestamp(int(epoch), UTC), status, int(attempts), host)
            for job, epoch, status, attempts, host in rows]


def wait_for_takeover(stack: Stack, killed: datetime) -> None:
    """Until a tick slot due after the kill has been run by the surviving scheduler."""
    began = time.monotonic()
    while time.monotonic() - began < TAKEOVER_TIMEOUT_SECONDS:
        if any(job in TICK_JOBS and status == "succeeded" for job, _, status, _, _ in ledger(stack, killed)):
            return
        time.sleep(1)
    raise RuntimeError(f"no slot due after the kill ran within {TAKEOVER_TIMEOUT_SECONDS:.0f}s")


def check_slots(stack: Stack, figures: KillFigures, start: datetime, end: datetime, killed: datetime,
                logs: str) -> None:
    """Every slot due in (start, end] ran exactly once, and so did every slot in the ledger at all
    (the catch-up slots both schedulers found at their first pass included)."""
    registry = TaskRegistry.model_validate(deploy_test_registry())
    expected = [(job.name, slot) for job in registry.jobs for slot in slots_between(job.schedule, start, end)]
    recorded = {(job, slot): (status, attempts, host)
                for job, slot, status, attempts, host in ledger(stack, datetime.fromtimestamp(0, UTC))}
    completions = Counter(
        (m.group(1), datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC))
        for m in FINISHED_LINE.finditer("\n".join(dict.fromkeys(logs.splitlines())))
    )
    figures.slots_expected = len(expected)
    for job, slot in expected:
        status, _, _ = recorded.get((job, slot), ("missing", 0, ""))
        if status in ("succeeded", "failed") and completions[(job, slot)] == 1:
            figures.slots_ran_once += 1
        else:
            figures.slot_problems.append(f"{job} {slot:%H:%M}: ledger {status}, {completions[(job, slot)]} runs logged")
    for (job, slot), (status, attempts, host) in recorded.items():
        runs = completions[(job, slot)]
        if status in ("succeeded", "failed"):
            figures.ledger_slots += 1
            figures.ledger_ran_once += int(runs == 1)
            figures.slots_failed += int(status == "failed")
        if (status in ("succeeded", "failed") and runs != 1) or (status == "skipped" and runs) or status == "running":
            figures.slot_problems.append(f"{job} {slot:%Y-%m-%d %H:%M}: ledger {status}, {runs} runs logged")
        if slot > killed and host == "scheduler-2":
            figures.slots_taken_over += 1
        if attempts > 1:
            figures.slots_retried += 1
