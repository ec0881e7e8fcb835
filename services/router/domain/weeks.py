"""ISO 8601 week labels (``2026-W48``) used in dedupe keys and digest file names.

The ISO year differs from the calendar year near New Year (2027-01-01 is in 2026-W53),
so labels are always built from ``date.isocalendar()``, never from ``strftime('%Y-%W')``.
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta

WEEK_LABEL_RE = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@functools.lru_cache(maxsize=4096)
def parse_week(label: str) -> tuple[int, int]:
    """Validate a ``YYYY-Www`` label, including that the week exists in that ISO year.

    Cached: generation parses the same few labels once per key it compares.
    """
    match = WEEK_LABEL_RE.match(label)
    if not match:
        raise ValueError(f"week must look like 2026-W48, got {label!r}")
    year, week = int(match.group(1)), int(match.group(2))
    if not 1 <= week <= weeks_in_year(year):
        raise ValueError(f"{label} does not exist: ISO year {year} has {weeks_in_year(year)} weeks")
    return year, week


def weeks_in_year(year: int) -> int:
    # Dec 28 is always in the last ISO week of its year.
    return date(year, 12, 28).isocalendar()[1]


def week_start(label: str) -> date:
    year, week = parse_week(label)
    return date.fromisocalendar(year, week, 1)


def previous_week(label: str) -> str:
    return iso_week(week_start(label) - timedelta(days=7))


def weeks_between(earlier: str, later: str) -> int:
    """Whole weeks from ``earlier`` to ``later`` (0 for the same week)."""
    return (week_start(later) - week_start(earlier)).days // 7
