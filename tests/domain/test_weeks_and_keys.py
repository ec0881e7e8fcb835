from __future__ import annotations

from datetime import date

import pytest

from services.router.domain.dedupe import generated_key
from services.router.domain.weeks import iso_week, parse_week, previous_week, weeks_between


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2027, 1, 1), "2026-W53"),
        (date(2026, 12, 31), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2024, 12, 30), "2025-W01"),
        (date(2026, 11, 26), "2026-W48"),
        (date(2021, 1, 3), "2020-W53"),
    ],
)
def test_iso_week(day: date, label: str) -> None:
    assert iso_week(day) == label


def test_week_53_exists_only_in_long_years() -> None:
    assert parse_week("2026-W53") == (2026, 53)
    with pytest.raises(ValueError, match="2025-W53 does not exist"):
        parse_week("2025-W53")
    for bad in ("2026-48", "2026-W4", "2026-w48", "../2026-W48", "2026-W00"):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_week_arithmetic_across_new_year() -> None:
    assert previous_week("2027-W01") == "2026-W53"
    assert weeks_between("2026-W52", "2027-W02") == 3


def test_generated_key() -> None:
    assert generated_key("platform_backlog", "2026-W48", "prod", "gateway", "arch_review") == (
        "platform_backlog:2026-W48:prod:gateway:arch_review")
    with pytest.raises(ValueError):
        generated_key("p", "2026-48", "prod", "gateway", "x")
