"""Load and validate ``config/trackers.yml``: which trackers exist and which items go where.

Policy in YAML, mechanism in code (like jiralert's config): the status, priority and owner
mappings a user reads are the ones the adapters apply. The file is validated on load like the
backlog policy (one ``PolicyInvalid`` naming the file, the key and the expectation: CLI exit 6,
HTTP 500). No file at the default path means sync is off; a ``BACKLOG_TRACKERS_PATH`` that
names a missing file is an error, because someone meant to turn sync on.

Secrets never live here: ``token_env`` and ``webhook_secret_env`` name environment variables
read at use time (:mod:`services.router.trackers.http`), so no repr, log line or error of this
model can hold a token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from services.router.config_file import load_config_file
from services.router.domain.enums import ACTIVE_STATUSES, CLOSED_STATUSES, Priority, Source, Status
from services.router.domain.models import Slug
from services.router.settings import Settings
from services.router.trackers.errors import TrackerPermanent

TRACKERS_FILE = "trackers.yml"
TRACKERS_PATH_ENV = "BACKLOG_TRACKERS_PATH"
Kind = Literal["redmine", "github", "gitlab", "jira"]
KINDS: tuple[Kind, ...] = ("redmine", "github", "gitlab", "jira")
OPEN_CLOSED_KINDS: frozenset[str] = frozenset({"github", "gitlab"})
DEFAULT_OPEN_CLOSED_MAP: dict[Status, str] = {
    Status.OPEN: "open", Status.IN_PROGRESS: "open", Status.BLOCKED: "open",
    Status.DONE: "closed", Status.CANCELED: "closed",
}
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = ("service", "env", "category")
# What a project names on each tracker (after {service}/{env}/{category} expansion).
PROJECT_PATTERNS: dict[str, tuple[str, str]] = {
    "redmine": (r"^(?:[a-z][a-z0-9_-]{0,99}|[0-9]{1,10})$", "a Redmine project identifier (or numeric id)"),
    "github": (r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$", 'a GitHub repository "owner/name"'),
    "gitlab": (r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$",
               'a GitLab project path "group/project"'),
    "jira": (r"^[A-Z][A-Z0-9_]{0,254}$", "a Jira project key such as PLAT"),
}
MATCH_LIST_KEYS = ("env", "service", "category", "owner", "source", "tags")

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
TrackerValue = Annotated[str, Field(min_length=1, max_length=255)]
UserName = Annotated[str, Field(pattern=r"^\S{1,255}$")]
Label = Annotated[str, Field(pattern=r"^[^,\n\r]{1,50}$")]
Strict = ConfigDict(extra="forbid", frozen=True)


class TrackerConfig(BaseModel):
    """One tracker: where it is, which secret opens it, and how backlog words map to its words."""

    model_config = Strict

    kind: Kind
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    token_env: EnvName
    project: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    status_map: dict[Status, TrackerValue] | None = Field(default=None, validate_default=True)
    priority_map: dict[Priority, TrackerValue] = Field(default_factory=dict)
    labels: list[Label] = Field(default_factory=list, max_length=20)
    assignees: dict[Slug, UserName] = Field(default_factory=dict)
    webhook_secret_env: EnvName | None = None
    issue_type: TrackerValue | None = Field(
        default=None, description="Jira issue type (default Task); Redmine tracker (default: the project's first)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://tracker.example.com")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; put the token in the variable named by token_env")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL without query or fragment")
        value = value.rstrip("/")
        if _kind(info) == "github" and not (value.endswith("://api.github.com") or value.endswith("/api/v3")):
            raise ValueError("GitHub's API is https://api.github.com (Enterprise: https://HOST/api/v3)")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _kind(info) is not None:
            check_project_template(_kind(info) or "", value)
        return value

    @field_validator("status_map")
    @classmethod
    def _status_map(cls, value: dict[Status, str] | None, info: ValidationInfo) -> dict[Status, str] | None:
        kind = _kind(info)
        if kind is None:
            return value
        if value is None:
            if kind not in OPEN_CLOSED_KINDS:
                raise ValueError(f"required for {kind}: map every backlog status "
                                 f"({', '.join(s.value for s in Status)}) to a {kind} status")
            return value
        missing = [s.value for s in Status if s not in value]
        if missing:
            raise ValueError(f"misses {', '.join(missing)}; every backlog status needs a tracker status")
        if kind in OPEN_CLOSED_KINDS:
            wrong = {s.value: v for s, v in value.items() if v != DEFAULT_OPEN_CLOSED_MAP[s]}
            if wrong:
                raise ValueError(f"{kind} issues are only open or closed: open, in_progress and blocked map "
                                 f"to open, done and canceled to closed (got {wrong})")
            return value
        active = {value[s]: s.value for s in Status if s in ACTIVE_STATUSES}
        for closed in (s for s in Status if s in CLOSED_STATUSES):
            if value[closed] in active:
                raise ValueError(f"{active[value[closed]]} and {closed.value} both map to {value[closed]!r}; an "
                                 f"active status and a closed one need different tracker statuses")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str], info: ValidationInfo) -> list[str]:
        spaced = [label for label in value if any(ch.isspace() for ch in label)]
        if _kind(info) == "jira" and spaced:
            raise ValueError(f"Jira labels cannot contain spaces: {spaced}")
        return value

    @field_validator("webhook_secret_env")
    @classmethod
    def _webhook(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _kind(info) == "redmine":
            raise ValueError("Redmine sends no webhooks; remove it (pull runs on the cursor)")
        return value

    @field_validator("issue_type")
    @classmethod
    def _issue_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = _kind(info)
        if value is not None and kind in OPEN_CLOSED_KINDS:
            raise ValueError(f"is for redmine and jira; {kind} has no issue types to choose")
        return value

    @property
    def statuses(self) -> dict[Status, str]:
        """The effective status map (GitHub/GitLab default: active → open, done/canceled → closed)."""
        return dict(self.status_map) if self.status_map is not None else dict(DEFAULT_OPEN_CLOSED_MAP)

    def backlog_status_for(self, remote_status: str, current: str, *, closed: bool) -> str:
        """The backlog status a remote status means, given the item's current one.

        The current status wins when it maps to what the tracker shows (GitHub shows ``open``
        for open, in_progress and blocked alike); else the first backlog status mapped to it,
        in the order open, in_progress, blocked, done, canceled; a status nobody mapped
        follows the tracker's own open/closed flag: closed → ``done``, open → ``open``.
        """
        mapping = self.statuses
        wanted = remote_status.casefold()
        if current in mapping and mapping[Status(current)].casefold() == wanted:
            return current
        for status in Status:
            if mapping[status].casefold() == wanted:
                return status.value
        if closed:
            return Status.DONE.value if current not in CLOSED_STATUSES else current
        return Status.OPEN.value if current in CLOSED_STATUSES else current


def _kind(info: ValidationInfo) -> str | None:
    """The tracker's kind while its other fields validate (None when the kind itself failed)."""
    kind = info.data.get("kind")
    return str(kind) if kind is not None else None


class RouteMatch(BaseModel):
    """Which items a route takes: every given key must match (a list means any of its values)."""

    model_config = Strict

    env: list[Slug] | None = None
    service: list[Slug] | None = None
    category: list[Slug] | None = None
    owner: list[Slug] | None = None
    source: list[Source] | None = None
    tags: list[Slug] | None = Field(default=None, description="the item has at least one of these tags")
    priority: list[Priority] | None = None

    @model_validator(mode="before")
    @classmethod
    def _scalars_to_lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in data.items()}
        return data

    def matches(self, item: Mapping[str, Any]) -> bool:
        for key in MATCH_LIST_KEYS:
            wanted: list[str] | None = getattr(self, key)
            if wanted is None:
                continue
            if key == "tags":
                if not set(wanted) & set(item.get("tags") or ()):
                    return False
            elif str(item.get(key)) not in wanted:
                return False
        return self.priority is None or str(item.get("priority")) in {p.value for p in self.priority}


class Route(BaseModel):
    model_config = Strict

    match: RouteMatch = Field(default_factory=RouteMatch)
    tracker: Name
    project: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class RouteTarget(BaseModel):
    """Where one item goes: the tracker and the project, placeholders expanded."""

    model_config = Strict

    tracker: str
    project: str


class TrackersConfig(BaseModel):
    model_config = Strict

    trackers: dict[Name, TrackerConfig] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes_name_trackers(self) -> TrackersConfig:
        for i, route in enumerate(self.routes):
            tracker = self.trackers.get(route.tracker)
            if tracker is None:
                declared = ", ".join(sorted(self.trackers)) or "none"
                raise ValueError(f"routes.{i}.tracker: unknown tracker {route.tracker!r}; declared: {declared}")
            if route.project is not None:
                try:
                    check_project_template(tracker.kind, route.project)
                except ValueError as exc:
                    raise ValueError(f"routes.{i}.project: {exc}") from None
            elif tracker.project is None:
                raise ValueError(f"routes.{i}: tracker {route.tracker!r} has no project; set project on the "
                                 f"route or the tracker")
        return self

    def route_for(self, item: Mapping[str, Any]) -> RouteTarget | None:
        """The first route whose match takes the item, or None (the item is not synced).

        Raises ``TrackerPermanent`` (kind ``config``) naming the route when the expanded
        project is not a valid name for its tracker (``acme/{service}`` expanded to something
        GitHub refuses, say): a per-item problem the sync engine parks with that reason.
        """
        for i, route in enumerate(self.routes):
            if not route.match.matches(item):
                continue
            tracker = self.trackers[route.tracker]
            template = route.project if route.project is not None else tracker.project
            assert template is not None  # checked on load
            project = expand_project(template, item)
            pattern, what = PROJECT_PATTERNS[tracker.kind]
            if not re.match(pattern, project):
                raise TrackerPermanent(route.tracker, f"routes.{i}.project: {template!r} expands to {project!r}, "
                                       f"not {what}", kind="config")
            return RouteTarget(tracker=route.tracker, project=project)
        return None


def check_project_template(kind: str, template: str) -> None:
    """A project (template) must use only known placeholders and, filled in, name a project."""
    unknown = [name for name in PLACEHOLDER.findall(template) if name not in PLACEHOLDERS]
    if unknown or template.count("{") != template.count("}"):
        raise ValueError(f"project {template!r}: placeholders are {{service}}, {{env}} and {{category}}"
                         + (f" (got {', '.join('{' + u + '}' for u in unknown)})" if unknown else ""))
    sample = PLACEHOLDER.sub("SAMPLE" if kind == "jira" else "sample", template)
    pattern, what = PROJECT_PATTERNS[kind]
    if not re.match(pattern, sample):
        raise ValueError(f"project {template!r} is not {what}")


def expand_project(template: str, item: Mapping[str, Any]) -> str:
    """Fill ``{service}``, ``{env}``, ``{category}`` from the item (never ``str.format``)."""
    return PLACEHOLDER.sub(lambda m: str(item.get(m.group(1), "")), template)


def trackers_path(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The trackers file and whether ``BACKLOG_TRACKERS_PATH`` chose it explicitly (read through
    ``Settings``; ``environ``, when given, is read instead)."""
    override = environ.get(TRACKERS_PATH_ENV) if environ is not None else settings.backlog_trackers_path
    if override:
        path = Path(override)
        return (path if path.is_absolute() else settings.root / path), True
    return settings.config_dir / TRACKERS_FILE, False


_TRACKERS_FILES: dict[tuple[Path | None, Path | None, str], str] = {}


def sync_configured(settings: Settings) -> bool:
    """Whether a trackers file exists, i.e. sync is on. Every item read asks this, so the path is
    worked out once per (root, override, cwd) instead of by pathlib on each request."""
    key = (settings.repo_root, settings.backlog_trackers_path, "" if settings.repo_root else os.getcwd())
    path = _TRACKERS_FILES.get(key)
    if path is None:
        path = _TRACKERS_FILES[key] = str(trackers_path(settings)[0])
    return os.path.exists(path)


def load_trackers(path: Path) -> TrackersConfig:
    """Read and validate one trackers file (parsed once per version of the file)."""
    return load_config_file(TrackersConfig, path, "trackers file")


def trackers_config(settings: Settings, environ: Mapping[str, str] | None = None) -> TrackersConfig | None:
    """The configured trackers, or None when sync is off (no file at the default path)."""
    path, explicit = trackers_path(settings, environ)
    if not explicit and not path.exists():
        return None
    return load_trackers(path)
