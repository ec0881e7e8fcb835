"""Dedupe keys: one generated item per prefix, week, env, service and category."""

from __future__ import annotations

import hashlib

from services.router.domain.weeks import WEEK_LABEL_RE, parse_week


def generated_key(prefix: str, week: str, env: str, service: str, category: str) -> str:
    """``platform_backlog:2026-W48:prod:gateway:arch_review`` (DESIGN §4)."""
    parse_week(week)
    return f"{prefix}:{week}:{env}:{service}:{category}"


def manual_key(env: str, service: str, category: str, title: str) -> str:
    """Key for a manual item sent without one: the same title twice is the same item."""
    digest = hashlib.sha256(title.strip().lower().encode()).hexdigest()[:16]
    return f"manual:{env}:{service}:{category}:{digest}"


def week_of_key(key: str) -> str | None:
    """The ISO week a dedupe key names (its second ``:`` part, ``2026-W48``), or None: manual
    items' keys (``manual:…``) and keys whose second part is no existing week name none."""
    parts = key.split(":", 2)
    if len(parts) < 3 or not WEEK_LABEL_RE.match(parts[1]):
        return None
    try:
        parse_week(parts[1])
    except ValueError:  # 2025-W53, 0000-W01: not a week
        return None
    return parts[1]
