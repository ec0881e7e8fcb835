"""A probe tool and registries for scheduler tests: each run leaves one countable effect.

``probe_tool.touch`` records its effect in memory or, given a DSN, in a Postgres ``effects``
table shared by several processes; ``probe_tool.fail`` raises the runbook's missing-digest error.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.router.clock import Clock, FixedClock, ensure_utc
from services.router.errors import DigestMissing
from services.router.jobs.registry import TaskRegistry
from services.router.runtime import Runtime
from services.router.settings import Settings
from services.router.signals.store import MemorySignalStore
from services.router.stores.memory import MemoryBacklogStore
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry

NO_DIGEST = "No platform digest found. Run architecture_pressure_tool.digest first."
EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS effects (id serial PRIMARY KEY, label text, as_of timestamptz, pid int)"


class TouchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = "probe"
    as_of: AwareDatetime | None = None
    dry_run: bool = False


class Probe:
    """The probe's state: effects in memory, or in Postgres when ``dsn`` is set."""

    def __init__(self, dsn: str | None = None, *, hold_seconds: float = 0.0, hang: bool = False) -> None:
        self.dsn = dsn
        self.hold_seconds = hold_seconds
        self.hang = hang
        self.effects: list[tuple[str, datetime | None]] = []

    def touch(self, ctx: ToolContext, p: TouchParams) -> dict[str, Any]:
        if self.hang:  # hold the slot until killed, before any effect
            while True:
                time.sleep(1)
        time.sleep(self.hold_seconds)
        if p.dry_run:
            return {"dry_run": True, "label": p.label}
        if self.dsn is None:
            self.effects.append((p.label, p.as_of))
        else:
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO effects (label, as_of, pid) VALUES (%s, %s, %s)",
                             (p.label, p.as_of, os.getpid()))
        return {"dry_run": False, "label": p.label, "as_of": p.as_of.isoformat() if p.as_of else None}

    def fail(self, ctx: ToolContext, p: TouchParams) -> dict[str, Any]:
        raise DigestMissing(NO_DIGEST)

    def tools(self) -> ToolRegistry:
        registry = ToolRegistry()
        for action, handler in (("touch", self.touch), ("fail", self.fail)):
            registry.action("probe_tool", action, area="backlog", level="admin", params=TouchParams,
                            summary=f"test probe {action}")(handler)
        return registry

    def runtime(self, clock: Clock, root: Path) -> Runtime:
        settings = Settings(REPO_ROOT=root)
        return Runtime(settings, clock, MemoryBacklogStore(clock=clock), MemorySignalStore(), self.tools())


def job(name: str, schedule: str, action: str = "touch", **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"probe {name}", "schedule": schedule, "tool": "probe_tool",
            "action": action, "params": {"label": name}, "entitlement": "tools.backlog.admin",
            "dry_run": "reports only", "log_file": f"/var/log/daarion/{name}.log", "slot_param": "as_of", **extra}


def registry(*jobs: dict[str, Any]) -> TaskRegistry:
    return TaskRegistry.model_validate({"version": 1, "jobs": list(jobs)})


class ScaledClock:
    """Fake time running ``speed`` times faster than real time from a shared real-time anchor,
    so separate processes agree on the fake time; stands at ``start`` until the anchor."""

    def __init__(self, start: datetime, anchor_epoch: float, speed: float) -> None:
        self.start = ensure_utc(start)
        self.anchor = anchor_epoch
        self.speed = speed

    def now(self) -> datetime:
        from datetime import timedelta

        return self.start + timedelta(seconds=max(0.0, time.time() - self.anchor) * self.speed)


__all__ = ["NO_DIGEST", "FixedClock", "Probe", "ScaledClock", "job", "registry"]
