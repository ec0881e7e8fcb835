"""``make demo`` on an empty backlog when the reports folder already holds digests.

The first demo replays three past Mondays; a later demo on an empty backlog — Postgres after a
JSONL demo, or a fresh ``BACKLOG_JSONL_DIR`` — finds this week's digest already there. Generation
under the replay's clock must read the digest of the replayed week (the latest not after the
clock), so the second backlog has the same per-week keys and carry-over streaks as the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.router.domain.queries import MAX_PAGE, ItemQuery
from services.router.runtime import build_runtime
from services.router.settings import Settings
from tests.generation.builders import REPO
from tests.pg_support import fresh_database

NOW = "2026-11-26T12:00:00Z"  # Thursday of 2026-W48: the replay covers W45, W46 and W47
PAST_WEEKS = ("2026-W45", "2026-W46", "2026-W47")

Shape = list[tuple[Any, ...]]


def run_demo(reports: Path, **env: str) -> str:
    """``make demo`` as a second shell runs it: its own process, the pipeline, a pinned clock."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REPO_ROOT": str(REPO), "BACKLOG_NOW": NOW,
               "BACKLOG_REPORTS_DIR": str(reports), "BACKLOG_STATE_DIR": str(reports.parent / "state"), **env}
    done = subprocess.run([sys.executable, "-m", "services.router.demo", "--pipeline"], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def backlog_shape(settings: Settings) -> Shape:
    """Every item as what a person compares: key (with its week), streak, where it carried from, status."""
    runtime = build_runtime(settings)
    try:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = runtime.store.list(ItemQuery(limit=MAX_PAGE, cursor=cursor))
            items += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    finally:
        runtime.close()
    return sorted((i["dedupe_key"], i["meta"].get("weeks_open"), i["meta"].get("carried_from_week"), i["status"],
                   i["owner"], i["created_at"][:10]) for i in items)


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Shape]]:
    """The first JSONL demo on a fresh clone: empty reports folder, empty backlog."""
    root = tmp_path_factory.mktemp("demo")
    reports = root / "reports"
    out = run_demo(reports, BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=str(root / "backlog"))
    assert all(f"DEMO DATA: replayed {week}" in out for week in PAST_WEEKS)
    shape = backlog_shape(Settings(REPO_ROOT=REPO, BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=root / "backlog"))
    weeks = Counter(key.split(":")[1] for key, *_ in shape)
    assert set(weeks) == {*PAST_WEEKS, "2026-W48"} and all(weeks[w] > 0 for w in PAST_WEEKS)
    assert max(streak for _, streak, *_ in shape) >= 3, "items left open carry over week after week"
    yield reports, shape


def test_a_fresh_jsonl_backlog_replays_the_past_weeks_like_the_first_demo(
    first_demo: tuple[Path, Shape], tmp_path: Path,
) -> None:
    reports, first = first_demo
    assert (reports / "platform" / "2026-W48.json").exists(), "this week's digest is already there"
    run_demo(reports, BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=str(tmp_path / "backlog"))
    again = backlog_shape(Settings(REPO_ROOT=REPO, BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=tmp_path / "backlog"))
    assert again == first


def test_postgres_after_a_jsonl_demo_replays_the_past_weeks_like_the_first_demo(
    first_demo: tuple[Path, Shape], tmp_path: Path,
) -> None:
    """The README's second shell: ``BACKLOG_BACKEND=postgres make demo`` on a migrated, empty database."""
    reports, first = first_demo
    with fresh_database("bb_demo") as dsn:
        out = run_demo(reports, BACKLOG_BACKEND="postgres", BACKLOG_POSTGRES_DSN=dsn,
                       BACKLOG_JSONL_DIR=str(tmp_path / "unused"))
        assert all(f"DEMO DATA: replayed {week}" in out for week in PAST_WEEKS)
        on_postgres = backlog_shape(Settings(REPO_ROOT=REPO, BACKLOG_BACKEND="postgres", BACKLOG_POSTGRES_DSN=dsn))
    assert on_postgres == first
