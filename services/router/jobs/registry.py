"""Load and validate ``ops/task_registry.yml``: which governance jobs exist and how they run.

The registry is the one declaration both schedulers read: ``ops/cron/jobs.cron`` is rendered from
it and the in-process scheduler runs it. An invalid file is one ``PolicyInvalid`` naming the file
and the key (``validate_config``), so a typo in a cron expression stops a deploy, not a 06:20 run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from services.router.config_file import load_config_file
from services.router.errors import BacklogError
from services.router.settings import Settings
from services.router.tools.registry import ToolRegistry, grants

# What the `scheduler` service account holds (config/rbac.yml, RUNBOOK §9). A job needing more
# could never run through the router, so the registry refuses it up front.
SCHEDULER_ENTITLEMENTS: frozenset[str] = frozenset({"tools.backlog.admin", "tools.pressure.write", "tools.risk.write",
                                                  "tools.tracker.admin"})
SCHEDULER_ACTOR = "scheduler"

JOB_NAME = r"^[a-z][a-z0-9_]{0,63}$"
TOOL_NAME = r"^[a-z][a-z0-9_]*$"
# Absolute paths safe to write unquoted in a cron command line (no spaces, quotes or `%`).
SAFE_PATH = r"^/[A-Za-z0-9._/+-]+$"
CRON_USER = r"^[a-z_][a-z0-9_-]{0,31}$"

HOURLY_CATCH_UP = timedelta(hours=1)
DAILY_CATCH_UP = timedelta(hours=6)
# A schedule whose slots are at most this far apart counts as "hourly" for the catch-up default.
HOURLY_PERIOD = timedelta(hours=1)

JobName = Annotated[str, Field(pattern=JOB_NAME)]
SafePath = Annotated[str, Field(pattern=SAFE_PATH, max_length=255)]


class CronSettings(BaseModel):
    """The header and wrapper of the rendered ``/etc/cron.d`` file."""

    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, Field(pattern=CRON_USER)] = "daarion"
    shell: SafePath = "/bin/sh"
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/:+-]+$")] = (
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    repo_root: SafePath = "/opt/daarion/backlog-bridge"
    router_url: Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9._:\[\]-]+(/[A-Za-z0-9._/-]*)?$")] = (
        "http://localhost:8000"
    )
    env_file: SafePath = "/etc/daarion/governance.env"
    python: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/+-]+$")] = "python3"
    runner: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/+-]+$")] = "ops/scripts/run_governance_job.py"


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: JobName
    description: Annotated[str, Field(min_length=1, max_length=500)]
    schedule: str
    tool: Annotated[str, Field(pattern=TOOL_NAME, max_length=64)]
    action: Annotated[str, Field(pattern=TOOL_NAME, max_length=64)]
    params: dict[str, JsonValue] = Field(default_factory=dict)
    entitlement: Annotated[str, Field(pattern=r"^tools\.[a-z][a-z0-9_]*\.(read|write|admin)$")]
    dry_run: Annotated[str, Field(min_length=1, max_length=500, description="what --dry-run reports")]
    log_file: SafePath
    catch_up_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    requires: list[JobName] = Field(default_factory=list, description="jobs whose latest slot must come first")
    slot_param: Annotated[str, Field(pattern=TOOL_NAME, max_length=64)] | None = Field(
        default=None, description="param that receives the slot's scheduled time (in-process scheduler)",
    )

    @model_validator(mode="after")
    def _slot_param_free(self) -> Job:
        if self.slot_param is not None and self.slot_param in self.params:
            raise ValueError(f"slot_param {self.slot_param} is also set in params")
        return self

    def params_for(self, slot: datetime | None = None) -> dict[str, Any]:
        """The action's params; with a slot, the slot's time in ``slot_param`` (a late run describes its slot)."""
        params: dict[str, Any] = dict(self.params)
        if slot is not None and self.slot_param is not None:
            params[self.slot_param] = slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return params

    @field_validator("schedule")
    @classmethod
    def _cron_expression(cls, value: str) -> str:
        """Five fields only: croniter also takes seconds/years, which cron.d does not."""
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"expected 5 cron fields (minute hour day-of-month month day-of-week), got {len(fields)}")
        if not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
        return " ".join(fields)

    @field_validator("entitlement")
    @classmethod
    def _scheduler_holds_it(cls, value: str) -> str:
        if not grants(SCHEDULER_ENTITLEMENTS, value):
            raise ValueError(f"the scheduler account holds only {', '.join(sorted(SCHEDULER_ENTITLEMENTS))}")
        return value

    @field_validator("params")
    @classmethod
    def _no_envelope_keys(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        clash = sorted({"tool", "action", "dry_run", "params"} & set(value))
        if clash:
            raise ValueError(f"params may not set {', '.join(clash)} (the runner sets them)")
        return value

    @property
    def catch_up(self) -> timedelta:
        """How late a missed slot may still run: explicit, else 1 h for hourly jobs, 6 h otherwise."""
        if self.catch_up_minutes is not None:
            return timedelta(minutes=self.catch_up_minutes)
        return HOURLY_CATCH_UP if self.period() <= HOURLY_PERIOD else DAILY_CATCH_UP

    def period(self) -> timedelta:
        return shortest_gap(self.schedule)

    @property
    def call(self) -> str:
        return f"{self.tool}.{self.action}"


class TaskRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1)
    cron: CronSettings = Field(default_factory=CronSettings)
    jobs: list[Job] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_and_prerequisites(self) -> TaskRegistry:
        seen: set[str] = set()
        logs: dict[str, str] = {}
        for job in self.jobs:
            if job.name in seen:
                raise ValueError(f"job {job.name} is declared twice")
            seen.add(job.name)
            if job.log_file in logs:
                raise ValueError(f"jobs {logs[job.log_file]} and {job.name} share log_file {job.log_file}")
            logs[job.log_file] = job.name
        for job in self.jobs:
            unknown = sorted(set(job.requires) - seen)
            if unknown or job.name in job.requires:
                raise ValueError(f"job {job.name} requires unknown job(s) {', '.join(unknown or [job.name])}")
        return self

    def get(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [job.name for job in self.jobs]


@lru_cache(maxsize=256)
def shortest_gap(schedule: str) -> timedelta:
    """The shortest gap between consecutive slots over a sample of 200 slots (cached per expression)."""
    it = croniter(schedule, datetime(2026, 1, 5, tzinfo=UTC))
    previous = it.get_next(datetime)
    gap = timedelta(days=366)
    for _ in range(200):
        current = it.get_next(datetime)
        gap = min(gap, current - previous)
        previous = current
    return gap


def default_registry_path(settings: Settings) -> Path:
    """``$BACKLOG_TASK_REGISTRY``, else ``ops/task_registry.yml`` under the repo root."""
    return settings.task_registry_path


REGISTRY_SHAPE = "a mapping with version, cron and jobs"


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a registry must not."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_registry(path: Path) -> TaskRegistry:
    """Read and validate the registry; a missing file is an error, never an empty schedule."""
    return load_config_file(TaskRegistry, path, "task registry", loader=UniqueKeyLoader, shape=REGISTRY_SHAPE)


def check_against_tools(registry: TaskRegistry, tools: ToolRegistry) -> list[str]:
    """Each job's tool action exists, its declared entitlement covers the action's, its params parse.

    A job that passes runs through the router exactly as declared; one that fails would fail at
    its first slot, so ``backlog jobs check`` and ``backlog scheduler`` refuse it up front.
    """
    problems: list[str] = []
    for job in registry.jobs:
        try:
            spec = tools.get(job.tool, job.action)
        except BacklogError as exc:
            problems.append(f"{job.name}: {job.call} is not served by the router ({exc.message})")
            continue
        if not grants([job.entitlement], spec.entitlement):
            problems.append(f"{job.name}: declares {job.entitlement} but {job.call} requires {spec.entitlement}")
        try:
            tools.parse(spec, job.params_for(datetime(2026, 1, 5, tzinfo=UTC)))
        except BacklogError as exc:
            problems.append(f"{job.name}: params do not fit {job.call}: {exc.message}")
        if "dry_run" not in spec.params.model_fields:
            problems.append(f"{job.name}: {job.call} takes no dry_run, so --dry-run cannot work")
    return problems
