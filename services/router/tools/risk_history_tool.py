"""``risk_history_tool``: hourly risk snapshots, the daily risk digest, retention, history.

Entitlements (area ``risk``): ``history`` reads (``tools.risk.read``); ``snapshot``, ``digest``
and ``cleanup`` write (``tools.risk.write``). Cleanup is ``write`` rather than ``admin`` on
purpose: the runbook's scheduler account holds ``tools.risk.write`` and runs
``risk_history_cleanup`` daily, and removing snapshots past the policy's retention destroys
nothing the policy still promises to keep. Every write accepts ``dry_run``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from services.router.clock import iso_z
from services.router.domain.models import Slug
from services.router.domain.strict import JSON_INTEGER, Flag, Moment
from services.router.generation.digest import RiskDigest, validate_digest
from services.router.signals.digest_files import folder_lock, read_json, write_json_and_md
from services.router.signals.digests import build_risk_digest, build_snapshots, risk_digest
from services.router.signals.reports import render_risk_md
from services.router.signals.store import hour_slot
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry
from services.router.tools.signal_access import moment, store_and_policy

TOOL = "risk_history_tool"
AREA = "risk"
MAX_HISTORY_DAYS = 366


class SnapshotParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = Field(default=None, description="default: every env with signals")
    as_of: Moment | None = Field(default=None, description="backfill: the moment to score (default: now)")
    dry_run: Flag = False


class DigestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = Field(default=None, description="default: every env; other envs' sections are kept")
    as_of: Moment | None = None
    dry_run: Flag = False


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_days: Annotated[int, Strict(), Field(ge=8, le=3650), JSON_INTEGER] | None = Field(
        default=None, description="default: policy")
    dry_run: Flag = False


class HistoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug
    service: Slug
    days: Annotated[int, Strict(), Field(ge=1, le=MAX_HISTORY_DAYS), JSON_INTEGER] = Field(
        default=7, description="period ending now (or at `until`)")
    until: Moment | None = None


def snapshot(ctx: ToolContext, p: SnapshotParams) -> dict[str, Any]:
    store, policy = store_and_policy(ctx)
    at = moment(ctx, p.as_of)
    snaps = build_snapshots(store, policy, at=at, computed_at=ctx.clock.now(), env=p.env)
    written = 0 if p.dry_run else store.put_snapshots(snaps)
    return {
        "dry_run": p.dry_run, "slot": iso_z(hour_slot(at)), "as_of": iso_z(at), "backend": store.backend,
        "count": len(snaps), "written": written, "unchanged": 0 if p.dry_run else len(snaps) - written,
        "snapshots": [
            {"env": s.env, "service": s.service, "score": s.score, "band": s.band, "parts": s.parts}
            for s in snaps
        ],
    }


def digest(ctx: ToolContext, p: DigestParams) -> dict[str, Any]:
    store, policy = store_and_policy(ctx)
    at = moment(ctx, p.as_of)
    sections = build_risk_digest(store, policy, at=at, env=p.env)
    folder = ctx.settings.reports_dir / "risk"
    path = folder / f"{at.date().isoformat()}.json"
    if p.dry_run:
        planned = risk_digest(sections, at=at)
        validate_digest(RiskDigest, planned, f"risk/{path.name}")
        return {"dry_run": True, "path": ctx.shown(path), "digest": planned}
    with folder_lock(folder):
        previous = read_json(path) or {}
        kept: dict[str, Any] = previous["envs"] if isinstance(previous.get("envs"), dict) else {}
        merged = risk_digest({**kept, **sections}, at=at)
        merged["envs"] = dict(sorted(merged["envs"].items()))
        # Daily generation reads this file through the same model: never write one it would refuse.
        validate_digest(RiskDigest, merged, f"risk/{path.name}")
        write_json_and_md(path, merged, render_risk_md(merged))
    return {"dry_run": False, "path": ctx.shown(path), "md_path": ctx.shown(path.with_suffix(".md")),
            "digest": merged}


def cleanup(ctx: ToolContext, p: CleanupParams) -> dict[str, Any]:
    store, policy = store_and_policy(ctx)
    days = p.retention_days if p.retention_days is not None else policy.snapshots.retention_days
    cutoff = ctx.clock.now() - timedelta(days=days)
    base = {"dry_run": p.dry_run, "retention_days": days, "cutoff": iso_z(cutoff), "backend": store.backend}
    if p.dry_run:
        return {**base, "removed": 0, "would_remove": store.count_snapshots_before(cutoff)}
    return {**base, "removed": store.delete_snapshots_before(cutoff)}


def history(ctx: ToolContext, p: HistoryParams) -> dict[str, Any]:
    store, _ = store_and_policy(ctx)
    until: datetime = moment(ctx, p.until, field="until") if p.until is not None else ctx.clock.now()
    since = until - timedelta(days=p.days)
    snaps = store.snapshots(env=p.env, service=p.service, since=since, until=until)
    scores = [s.score for s in snaps]
    return {
        "env": p.env, "service": p.service, "since": iso_z(since), "until": iso_z(until),
        "count": len(snaps),
        "summary": {"avg": round(sum(scores) / len(scores), 1), "max": max(scores), "min": min(scores),
                    "latest": scores[-1]} if scores else None,
        "points": [{"slot": iso_z(s.slot), "score": s.score, "band": s.band, "parts": s.parts} for s in snaps],
    }


def register(registry: ToolRegistry) -> None:
    def add(action: str, level: Any, params: type[BaseModel], summary: str, handler: Any) -> None:
        registry.action(TOOL, action, area=AREA, level=level, params=params, summary=summary)(handler)

    add("snapshot", "write", SnapshotParams, "Store each service's risk score for this hour (as_of: backfill)",
        snapshot)
    add("digest", "write", DigestParams, "Write ops/reports/risk/YYYY-MM-DD.{json,md}", digest)
    add("cleanup", "write", CleanupParams, "Remove risk snapshots past the policy's retention", cleanup)
    add("history", "read", HistoryParams, "A service's hourly risk scores over a period", history)
