"""Dedupe keys: one generated item per prefix, week, env, service and category."""

from __future__ import annotations

import hashlib

from services.router.domain.weeks import parse_week


def generated_key(prefix: str, week: str, env: str, service: str, category: str) -> str:
    """``platform_backlog:2026-W48:prod:gateway:arch_review`` (DESIGN §4)."""
    parse_week(week)
    return f"{prefix}:{week}:{env}:{service}:{category}"


def manual_key(env: str, service: str, category: str, title: str) -> str:
    """Key for a manual item sent without one: the same title twice is the same item."""
    digest = hashlib.sha256(title.strip().lower().encode()).hexdigest()[:16]
    return f"manual:{env}:{service}:{category}:{digest}"
