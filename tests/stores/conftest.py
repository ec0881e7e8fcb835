"""Fixtures of the Postgres-only store tests: one database per test module, emptied per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_support import fresh_database, truncate


@pytest.fixture(scope="module")
def module_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_database(f"bb_{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}") as dsn:
        yield dsn


@pytest.fixture
def dsn(module_dsn: str) -> str:
    truncate(module_dsn)
    return module_dsn
