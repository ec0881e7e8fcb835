"""When a job is due: cron slots between two instants, and which of them are too late to run.

Pure functions over croniter, so the scheduler's decisions can be tested without a clock or a
database. Slots are timezone-aware UTC datetimes, the job's *scheduled* time, never the time a
process happened to notice them: every scheduler process computes the same slots.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from croniter import croniter

from services.router.clock import ensure_utc

# How far back a scheduler looks for slots it never saw (recorded as skipped), and how many.
MAX_LOOKBACK = timedelta(days=7)
MAX_SLOTS_PER_PASS = 500


def slots_between(
    schedule: str, after: datetime, until: datetime, *, limit: int = MAX_SLOTS_PER_PASS
) -> list[datetime]:
    """Slots ``s`` with ``after < s <= until``, oldest first; at most the newest ``limit`` of them."""
    after, until = ensure_utc(after), ensure_utc(until)
    if until <= after:
        return []
    it: Any = croniter(schedule, after)
    found: list[datetime] = []
    while True:
        slot = ensure_utc(it.get_next(datetime))
        if slot > until:
            break
        found.append(slot)
        if len(found) > limit:
            found.pop(0)
    return found


def latest_slot_at_or_before(schedule: str, at: datetime) -> datetime:
    """The most recent slot of ``schedule`` not after ``at`` (``at`` itself when it is one)."""
    at = ensure_utc(at)
    if croniter.match(schedule, at):
        return at.replace(second=0, microsecond=0)
    it: Any = croniter(schedule, at)
    return ensure_utc(it.get_prev(datetime))


def is_too_late(slot: datetime, now: datetime, window: timedelta) -> bool:
    """A slot older than the catch-up window is skipped, not run late."""
    return ensure_utc(now) - ensure_utc(slot) > window


def scan_floor(last_slot: datetime | None, now: datetime, window: timedelta) -> datetime:
    """Where to start looking for new slots (exclusive).

    After the last slot any process recorded, so every slot since is either run or recorded as
    skipped; a job never run before starts at the catch-up window, so a fresh install does not
    record a week of skips. Never further back than ``MAX_LOOKBACK``.
    """
    now = ensure_utc(now)
    if last_slot is None:
        return now - window - timedelta(microseconds=1)  # a slot exactly `window` old still runs
    return max(ensure_utc(last_slot), now - MAX_LOOKBACK)


def describe_lateness(slot: datetime, now: datetime, window: timedelta) -> str:
    late = ensure_utc(now) - ensure_utc(slot)
    return f"missed by {_duration(late)}; catch-up window is {_duration(window)}"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours}h{minutes:02d}m"
    return f"{hours}h" if hours else f"{minutes}m"
