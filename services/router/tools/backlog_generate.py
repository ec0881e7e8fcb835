"""``backlog_tool.auto_generate_weekly`` / ``auto_generate_daily`` (RUNBOOK §3, DESIGN §4-6).

Both are admin actions (``tools.backlog.admin``) taking ``{env, dry_run}``:

* weekly reads the latest ``ops/reports/platform/YYYY-Www.json`` and runs the categories whose
  rules read the platform digest; daily reads the latest ``ops/reports/risk/YYYY-MM-DD.json``
  and runs the risk-digest categories (e.g. ``risk_reduction``), keyed by the ISO week of the
  digest's date so a service flagged every day gets one item per week.
* No digest, or none with a section for ``env``: ``DigestMissing`` with the runbook's text (and
  ``env`` in a second field) — a 409 over HTTP, exit code 4 in the CLI. A malformed digest is a
  ``ValidationFailed`` naming the file and the field. Either way nothing is written.
* Turned off in the policy: the result says ``skipped`` and why, so a scheduled run never
  prints an empty result (the runbook's "Job output empty" symptom).

A real run records its result for the dashboard and ``/metrics``
(``generation.records.record_last_generation``); a failure to record is logged, not raised,
because the items are already written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.domain.models import Slug
from services.router.domain.strict import Flag
from services.router.errors import BacklogError, DigestMissing
from services.router.generation.digest import NO_PLATFORM_DIGEST, NO_RISK_DIGEST
from services.router.generation.digest_lookup import Ignored, Lookup, find_platform_digest, find_risk_digest
from services.router.generation.facts import daily_facts, weekly_facts
from services.router.generation.records import record_last_generation
from services.router.generation.run import generate, skipped
from services.router.policy import BacklogPolicy
from services.router.stores.gc_pause import gc_paused
from services.router.tools.acceptance_expiry import expire_acceptances
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry

log = logging.getLogger("backlog.generation")

TOOL = "backlog_tool"
AREA = "backlog"


class GenerateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug
    dry_run: Flag = Field(default=False, description="Return the plan; write nothing")


def policy_file(ctx: ToolContext) -> str:
    return ctx.shown(Path(ctx.policy_path or ctx.settings.policy_path))


def auto_generate_weekly(ctx: ToolContext, p: GenerateParams) -> dict[str, Any]:
    return generate_from_digest(ctx, p, daily=False)


def auto_generate_daily(ctx: ToolContext, p: GenerateParams) -> dict[str, Any]:
    return generate_from_digest(ctx, p, daily=True)


def generate_from_digest(ctx: ToolContext, p: GenerateParams, *, daily: bool) -> dict[str, Any]:
    """The one path both actions take: policy switch, latest digest with the env, plan, apply, record."""
    policy = ctx.policy()
    switch = "daily_from_risk_digest" if daily else "weekly_from_pressure_digest"
    if not getattr(policy.generation, switch):
        return skipped(p.env, dry_run=p.dry_run, reason=f"generation.{switch} is false in {policy_file(ctx)}")
    with gc_paused():  # the digest's models are acyclic too: half the cost of reading it otherwise
        # in a call of its own, so the digest and its facts are freed before collection resumes
        # (left to the collector, they are its first, largest young generation)
        result = _read_and_generate(ctx, p, policy, daily=daily)
        # recorded while still paused: the record is bytes, and its few containers allocated with
        # collection on would set off a young collection over everything the run left alive (the
        # result and the store's new records) in the middle of the action — about 2 ms of a
        # 1000-service run; the collector meets those objects once, later, either way
        return recorded(ctx, result, "auto_generate_daily" if daily else "auto_generate_weekly")


def _read_and_generate(ctx: ToolContext, p: GenerateParams, policy: BacklogPolicy, *, daily: bool) -> dict[str, Any]:
    missing = NO_RISK_DIGEST if daily else NO_PLATFORM_DIGEST
    today = ctx.clock.now().date()  # the latest digest not after the clock: a past clock reads its own week
    find = find_risk_digest if daily else find_platform_digest
    lookup: Lookup[Any] = find(ctx.settings.reports_dir, not_after=today)
    ignored = report_ignored(lookup.ignored)
    found = lookup.found
    if found is None:
        raise DigestMissing(missing, env=p.env, ignored_files=ignored)
    if p.env not in found.digest.envs:
        raise DigestMissing(missing, env=p.env, digest_file=found.name, digest_envs=sorted(found.digest.envs),
                            ignored_files=ignored)
    facts = daily_facts(found, p.env) if daily else weekly_facts(found, p.env)
    del lookup, found  # what generation reads is in ``facts``: the digest's other models go now, not
    # after the run (their memory is reused, still warm, by the candidates and the plan)
    expire_acceptances(ctx, dry_run=p.dry_run)  # suppression then sees what is accepted now
    result = generate(ctx.store, policy, facts, today=today, actor=ctx.actor, dry_run=p.dry_run,
                      owner_for=ctx.owner_for, reports_dir=ctx.settings.reports_dir)
    return {**result, "ignored_files": ignored}


def report_ignored(ignored: tuple[Ignored, ...]) -> list[dict[str, str]]:
    """Files in the digest folder that were not read: one warning line naming them, and the list."""
    if ignored:
        log.warning("digest files ignored (not read): %s",
                    "; ".join(f"{i.file} ({i.reason})" for i in ignored))
    return [i.to_dict() for i in ignored]


def recorded(ctx: ToolContext, result: dict[str, Any], action: str) -> dict[str, Any]:
    """Record a real run for the dashboard and /metrics."""
    if result["dry_run"]:
        return result
    try:
        record_last_generation(ctx.settings.state_dir, result, action=action, ran_at=ctx.clock.now())
    except (BacklogError, ValueError) as exc:
        log.warning("could not record the %s run for %s: %s", action, result["env"], exc)
    return result


def register(registry: ToolRegistry) -> None:
    registry.action(TOOL, "auto_generate_weekly", area=AREA, level="admin", params=GenerateParams,
                    summary="Generate this week's items from the latest platform digest")(auto_generate_weekly)
    registry.action(TOOL, "auto_generate_daily", area=AREA, level="admin", params=GenerateParams,
                    summary="Generate items from the latest daily risk digest (risk-digest categories)")(
        auto_generate_daily)
