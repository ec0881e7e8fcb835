"""One clock for every tool, so tests (and backfills) can set the time.

Only timezone-aware UTC datetimes leave this module.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.router.settings import Settings


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move (tests, backfills, demos)."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def advance(self, **delta: float) -> None:
        self._at = self._at + timedelta(**delta)


def ensure_utc(value: datetime) -> datetime:
    """Refuse naive datetimes: a naive value is a bug waiting for a timezone."""
    if value.tzinfo is None:
        raise ValueError("naive datetime; use a timezone-aware UTC value")
    return value.astimezone(UTC)


def today(clock: Clock) -> date:
    return clock.now().date()


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a value without offset is refused."""
    return ensure_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@functools.lru_cache(maxsize=64)
def iso_z(value: datetime) -> str:
    """UTC timestamp in the ``2026-11-23T06:00:02.123456Z`` form used in every file.

    Remembered for recent values: a batch stamps thousands of items and events with one
    ``now``, and formatting it (with the UTC conversion) was a sixth of planning an item."""
    v = ensure_utc(value)  # explicit formatting: several times faster than strftime on the write path
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"


def default_clock(settings: Settings | None = None) -> Clock:
    """The process clock: ``BACKLOG_NOW`` (ISO 8601, validated by ``Settings``) pins it, for demos and tests."""
    if settings is None:
        from services.router.settings import load_settings

        settings = load_settings()
    if settings.backlog_now is not None:
        return FixedClock(settings.backlog_now)
    return SystemClock()
