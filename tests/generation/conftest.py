"""A generation harness over the shared ``store`` fixture (memory, JSONL and Postgres).

Settings point every path into ``tmp_path`` (reports, state, policy), so tests never touch the
repository's ``ops/``; actions run through the real tool registry, as the router calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.router.clock import FixedClock
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.tools.catalog import build_registry
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry
from tests.generation.builders import write_json, write_policy

REGISTRY = build_registry()


@dataclass
class Gen:
    store: BacklogStore
    clock: FixedClock
    root: Path
    registry: ToolRegistry = REGISTRY

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def policy_path(self) -> Path:
        return self.root / "backlog_policy.yml"

    def settings(self) -> Settings:
        return Settings(REPO_ROOT=self.root, BACKLOG_REPORTS_DIR=self.reports,
                        BACKLOG_STATE_DIR=self.state, BACKLOG_POLICY_PATH=self.policy_path)

    def context(self, store: BacklogStore | None = None) -> ToolContext:
        return ToolContext(store or self.store, self.settings(), self.clock, "scheduler", self.policy_path)

    def policy(self, **sections: dict[str, Any]) -> None:
        write_policy(self.policy_path, **sections)

    def platform(self, digest: dict[str, Any], name: str | None = None) -> Path:
        return write_json(self.reports / "platform" / (name or f"{digest['week']}.json"), digest)

    def risk(self, digest: dict[str, Any]) -> Path:
        return write_json(self.reports / "risk" / f"{digest['date']}.json", digest)

    def call(self, action: str, store: BacklogStore | None = None, **params: Any) -> Any:
        return self.registry.execute(self.context(store), "backlog_tool", action, params)

    def weekly(self, env: str = "prod", *, dry_run: bool = False, store: BacklogStore | None = None) -> Any:
        return self.call("auto_generate_weekly", store, env=env, dry_run=dry_run)

    def daily(self, env: str = "prod", *, dry_run: bool = False) -> Any:
        return self.call("auto_generate_daily", env=env, dry_run=dry_run)

    def items(self, env: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.call("list", env=env, limit=500, cursor=cursor)
            out += page["items"]
            if page["next_cursor"] is None:
                return out
            cursor = page["next_cursor"]

    def by_key(self) -> dict[str, dict[str, Any]]:
        return {i["dedupe_key"]: i for i in self.items()}


@pytest.fixture
def gen(store: BacklogStore, clock: FixedClock, tmp_path: Path) -> Gen:
    harness = Gen(store, clock, tmp_path / "gen")
    harness.root.mkdir()
    harness.policy()
    return harness
