"""``architecture_pressure_tool``: the weekly platform priority digest (DESIGN §6).

``digest`` (``tools.pressure.write``) writes ``ops/reports/platform/YYYY-Www.json`` and its
``.md`` twin for the ISO week of the run (``as_of`` or now); a run for one env replaces that
env's section and keeps the others. ``latest`` (``tools.pressure.read``) returns the newest
digest not after the clock's ISO week, which is what weekly backlog generation reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.domain.models import Slug
from services.router.domain.strict import Flag, Moment
from services.router.domain.weeks import iso_week
from services.router.errors import DigestMissing
from services.router.generation.digest import NO_PLATFORM_DIGEST, PlatformDigest, validate_digest
from services.router.generation.digest_lookup import week_files
from services.router.signals.digest_files import folder_lock, read_json, write_json_and_md
from services.router.signals.digests import build_pressure_sections, pressure_digest
from services.router.signals.reports import render_pressure_md
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry
from services.router.tools.signal_access import moment, store_and_policy

TOOL = "architecture_pressure_tool"
AREA = "pressure"
NO_DIGEST = NO_PLATFORM_DIGEST


class DigestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = Field(default=None, description="default: every env; other envs' sections are kept")
    as_of: Moment | None = Field(default=None, description="the moment the digest describes (default: now)")
    dry_run: Flag = False


class LatestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = Field(default=None, description="only this env's section")


def platform_dir(ctx: ToolContext) -> Path:
    return ctx.settings.reports_dir / "platform"


def digest(ctx: ToolContext, p: DigestParams) -> dict[str, Any]:
    store, policy = store_and_policy(ctx)
    at = moment(ctx, p.as_of)
    sections = build_pressure_sections(store, policy, at=at, env=p.env)
    folder = platform_dir(ctx)
    path = folder / f"{iso_week(at.date())}.json"
    summary = {env: [{"service": s["service"], "pressure_score": s["pressure_score"], "band": s["band"]}
                     for s in section["services"]] for env, section in sections.items()}
    if p.dry_run:
        planned = pressure_digest(sections, at=at, previous=None)
        validate_digest(PlatformDigest, planned, f"platform/{path.name}")
        return {"dry_run": True, "path": ctx.shown(path), "envs": summary, "digest": planned}
    with folder_lock(folder):
        merged = pressure_digest(sections, at=at, previous=read_json(path))
        # Generation reads this file through the same model: never write one it would refuse.
        validate_digest(PlatformDigest, merged, f"platform/{path.name}")
        write_json_and_md(path, merged, render_pressure_md(merged))
    return {"dry_run": False, "week": merged["week"], "path": ctx.shown(path),
            "md_path": ctx.shown(path.with_suffix(".md")), "envs": summary,
            "kept_envs": sorted(set(merged["envs"]) - set(sections))}


def latest(ctx: ToolContext, p: LatestParams) -> dict[str, Any]:
    this_week = ctx.clock.now().date().isocalendar()[:2]  # as generation reads: not after the clock's week
    for week, path in reversed(week_files(platform_dir(ctx))):
        if week > this_week:
            continue
        data = read_json(path)
        if data is None:
            continue
        envs = data.get("envs") or {}
        if p.env is not None:
            if p.env not in envs:
                continue
            data = {**data, "envs": {p.env: envs[p.env]}}
        current = iso_week(ctx.clock.now().date())
        return {"week": data.get("week", path.stem), "path": ctx.shown(path), "stale_digest": path.stem != current,
                "digest": data}
    raise DigestMissing(NO_DIGEST, env=p.env) if p.env else DigestMissing(NO_DIGEST)


def register(registry: ToolRegistry) -> None:
    registry.action(TOOL, "digest", area=AREA, level="write", params=DigestParams,
                    summary="Write ops/reports/platform/YYYY-Www.{json,md} (one env's section, others kept)")(digest)
    registry.action(TOOL, "latest", area=AREA, level="read", params=LatestParams,
                    summary="The newest platform priority digest")(latest)
