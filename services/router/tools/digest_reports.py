"""The digests' report files for people: which there are, and one with its ``.md`` text.

``architecture_pressure_tool.reports`` / ``report`` (``tools.pressure.read``) serve the weekly
platform digests (``platform/YYYY-Www.{json,md}``); ``risk_history_tool.reports`` / ``report``
(``tools.risk.read``) the daily risk digests (``risk/YYYY-MM-DD.{json,md}``). Files are found
by listing the folder (``generation.digest_lookup``: only names of real weeks or dates, only
regular files inside the folder — a planted symlink is never followed); a request names a
report by its week or date, which picks one of the listed files, never a path. Newest first,
not after the clock (a digest written for a later week is not shown yet, as generation does not
read it). The ``.md`` is returned as text (at most ``MAX_MD_BYTES``); the web dashboard renders it
with HTML escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints

from services.router.domain.strict import JSON_INTEGER
from services.router.errors import NotFound
from services.router.generation.digest import PLATFORM_DIR, RISK_DIR
from services.router.generation.digest_lookup import date_files, refusal, week_files
from services.router.signals.digest_files import read_json
from services.router.tools.context import ToolContext
from services.router.tools.registry import Level, ToolRegistry

MAX_MD_BYTES = 1024 * 1024
MAX_REPORTS = 400
Kind = tuple[str, str, str]  # tool, area, folder


class ReportsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_REPORTS), JSON_INTEGER] = 60


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(pattern=r"^\d{4}-(W\d{2}|\d{2}-\d{2})$")] = Field(
        description="the week (platform, 2026-W48) or date (risk, 2026-11-26) of the report")


def _listing(ctx: ToolContext, folder: str) -> list[tuple[str, Path]]:
    """(name, json path) of the folder's digests not after the clock, newest first."""
    base = ctx.settings.reports_dir / folder
    today = ctx.clock.now().date()
    if folder == PLATFORM_DIR:
        week = today.isocalendar()[:2]
        found = [(p.stem, p) for w, p in week_files(base) if w <= week]
    else:
        found = [(p.stem, p) for d, p in date_files(base) if d <= today]
    return found[::-1]


def _markdown(json_path: Path) -> tuple[str | None, bool]:
    """The ``.md`` twin's text (None when there is none to read) and whether it was cut."""
    path = json_path.with_suffix(".md")
    if refusal(json_path.parent, path) is not None:
        return None, False
    with path.open("rb") as handle:
        data = handle.read(MAX_MD_BYTES + 1)
    return data[:MAX_MD_BYTES].decode("utf-8", errors="replace"), len(data) > MAX_MD_BYTES


def _services(digest: dict[str, Any] | None) -> dict[str, list[str]]:
    """Each env's services, in the digest's order (as the report ranks them)."""
    envs = (digest or {}).get("envs")
    if not isinstance(envs, dict):
        return {}
    out: dict[str, list[str]] = {}
    for env, section in envs.items():
        services = section.get("services") if isinstance(section, dict) else None
        out[str(env)] = [str(s["service"]) for s in services or () if isinstance(s, dict) and "service" in s]
    return out


def reports_of(folder: str) -> Callable[[ToolContext, ReportsParams], dict[str, Any]]:
    def reports(ctx: ToolContext, p: ReportsParams) -> dict[str, Any]:
        found = _listing(ctx, folder)
        rows = [{"name": name, "file": f"{folder}/{path.name}",
                 "md": refusal(path.parent, path.with_suffix(".md")) is None} for name, path in found[: p.limit]]
        return {"kind": folder, "total": len(found), "reports": rows}

    return reports


def report_of(folder: str) -> Callable[[ToolContext, ReportParams], dict[str, Any]]:
    def report(ctx: ToolContext, p: ReportParams) -> dict[str, Any]:
        path = dict(_listing(ctx, folder)).get(p.name)
        if path is None:
            raise NotFound(f"no {folder} report {p.name}", field="name", name=p.name)
        markdown, truncated = _markdown(path)
        return {"kind": folder, "name": p.name, "file": f"{folder}/{path.name}", "markdown": markdown,
                "truncated": truncated, "services": _services(read_json(path))}

    return report


def register(registry: ToolRegistry) -> None:
    kinds: list[Kind] = [("architecture_pressure_tool", "pressure", PLATFORM_DIR),
                         ("risk_history_tool", "risk", RISK_DIR)]
    level: Level = "read"
    for tool, area, folder in kinds:
        what = "weekly platform" if folder == PLATFORM_DIR else "daily risk"
        registry.action(tool, "reports", area=area, level=level, params=ReportsParams,
                        summary=f"The {what} digests there are, newest first")(reports_of(folder))
        registry.action(tool, "report", area=area, level=level, params=ReportParams,
                        summary=f"One {what} digest's report (.md text) and its services")(report_of(folder))

