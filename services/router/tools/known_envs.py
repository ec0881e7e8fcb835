"""Which envs exist, so a misspelt one (``?env=prdo``) does not look like a healthy, empty env.

An env is *known* when it has items, signals or a section in the latest platform or risk digest
(not after the clock), or when the policy names it (``envs:`` or ``alerts.envs``) — the last
rule is what lets a fresh install show an empty ``prod`` without a warning. Read actions
still answer for an unknown env (an empty result is a true answer), but say
``"known_env": false`` and why, and every surface shows that warning instead of a green state.

The cheap sources are asked first (the policy, whether the answer already holds items); the
signal store and the digest files only when those do not know the env.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from services.router.errors import BacklogError
from services.router.files import ChangedFileCache
from services.router.generation.digest import PLATFORM_DIR, RISK_DIR
from services.router.generation.digest_lookup import date_files, week_files
from services.router.tools.context import ToolContext

log = logging.getLogger("backlog.envs")


def _digest_envs(_: Path, data: bytes) -> tuple[str, ...]:
    """The env sections a digest file names (unvalidated: a bad file simply names none)."""
    try:
        envs = orjson.loads(data).get("envs")
    except (orjson.JSONDecodeError, AttributeError):
        return ()
    return tuple(str(e) for e in envs) if isinstance(envs, dict) else ()


_digests: ChangedFileCache[tuple[str, ...]] = ChangedFileCache(_digest_envs)


def digest_envs(ctx: ToolContext) -> set[str]:
    """Envs with a section in the latest platform and risk digests not after the clock."""
    today = ctx.clock.now().date()
    reports = ctx.settings.reports_dir
    weeks = [p for week, p in week_files(reports / PLATFORM_DIR) if week <= today.isocalendar()[:2]]
    days = [p for day, p in date_files(reports / RISK_DIR) if day <= today]
    found: set[str] = set()
    for newest in (weeks[-1:] + days[-1:]):
        try:
            found.update(_digests.get(newest))
        except OSError:
            continue
    return found


def signal_envs(ctx: ToolContext) -> set[str]:
    from services.router.tools.signal_access import signal_store_for

    try:
        return {env for env, _ in signal_store_for(ctx).services()}
    except BacklogError as exc:  # an unreachable signal store must not fail a dashboard
        log.info("known envs: signal store not read: %s", exc.message)
        return set()


def known_envs(ctx: ToolContext) -> set[str]:
    """Every env the product knows of (the union of all the sources)."""
    policy = ctx.policy()
    return {*policy.envs, *policy.alerts.envs, *ctx.store.envs(), *signal_envs(ctx), *digest_envs(ctx)}


def unknown_env_warning(env: str, known: set[str]) -> str:
    return f"no items, signals or digest for env '{env}'; known envs: {', '.join(sorted(known)) or 'none'}"


def env_status(ctx: ToolContext, env: str, *, has_items: bool) -> dict[str, Any]:
    """``{"known_env": true}``, or ``false`` with the warning every surface shows."""
    policy = ctx.policy()
    if has_items or env in policy.envs or env in policy.alerts.envs:
        return {"known_env": True}
    known = known_envs(ctx)
    if env in known:
        return {"known_env": True}
    return {"known_env": False, "warning": unknown_env_warning(env, known)}
