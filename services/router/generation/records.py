"""The last generation run per env: ``{BACKLOG_STATE_DIR}/generation/last_{env}.json``.

Default ``ops/state/generation/``: the result of the latest ``auto_generate_weekly`` or
``auto_generate_daily`` run that wrote (not a dry run), as the action returned it, plus
``ran_at`` (ISO 8601 UTC) and ``action``. The generation tool writes it after each run; the
dashboard shows its held-back items and ``/metrics`` its held-back count, because items held
back by the cap must stay visible somewhere a person looks. A missing or damaged file means
"no generation recorded", never an error: the dashboard must render before the first Monday run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from services.router.clock import iso_z, parse_utc
from services.router.files import ChangedFileCache, write_atomic

log = logging.getLogger("backlog.generation")

GENERATION_DIR = "generation"
ENV_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_HELD_BACK_SHOWN = 200


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """The parts of a generation result the dashboard and the metrics show."""

    env: str
    action: str
    ran_at: datetime | None
    week: str | None
    stale_digest: bool
    counts: dict[str, int]
    held_back_count: int
    held_back: list[dict[str, Any]] = field(default_factory=list)


def generation_path(state_dir: Path, env: str) -> Path:
    if not ENV_PATTERN.match(env):
        raise ValueError(f"not an env name: {env!r}")
    return state_dir / GENERATION_DIR / f"last_{env}.json"


def record_last_generation(state_dir: Path, result: dict[str, Any], *, action: str, ran_at: datetime) -> Path:
    """Write the result of a generation run that wrote items (atomically: temp, fsync, rename).

    The generation code calls this after every non-dry run; the result must carry ``env``.
    """
    path = generation_path(state_dir, str(result["env"]))
    payload = {**result, "action": action, "ran_at": iso_z(ran_at)}
    write_atomic(path, orjson.dumps(payload, default=str))  # a result lists every candidate: megabytes
    return path


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_generation(env: str, data: Any) -> GenerationRecord | None:
    """Tolerant of shape: ``held_back`` may be a count or a list; items with ``action: held_back`` count too."""
    if not isinstance(data, dict):
        return None
    raw_items = data.get("items")
    items: list[Any] = raw_items if isinstance(raw_items, list) else []
    held = [i for i in items if isinstance(i, dict) and i.get("action") == "held_back"]
    raw = data.get("held_back")
    if isinstance(raw, list):
        held = held or [i for i in raw if isinstance(i, dict)]
        count = len(raw)
    else:
        stated = _count(raw)
        count = stated if stated is not None else len(held)
    try:
        ran_at = parse_utc(str(data["ran_at"])) if data.get("ran_at") else None
    except ValueError:
        ran_at = None
    counts = {k: n for k in ("created", "updated", "unchanged") if (n := _count(data.get(k))) is not None}
    return GenerationRecord(
        env=env, action=str(data.get("action") or "auto_generate_weekly"), ran_at=ran_at,
        week=str(data["week"]) if data.get("week") else None, stale_digest=bool(data.get("stale_digest")),
        counts=counts, held_back_count=count, held_back=held[:MAX_HELD_BACK_SHOWN],
    )


def _read_record(path: Path, data: bytes) -> GenerationRecord | None:
    env = path.name[len("last_"):-len(".json")]
    # orjson, as it was written: a run lists every candidate
    return parse_generation(env, orjson.loads(data))


# /metrics and the dashboard read the records on every scrape or page; runs rewrite them weekly.
_records: ChangedFileCache[GenerationRecord | None] = ChangedFileCache(_read_record)


def last_generation(state_dir: Path, env: str) -> GenerationRecord | None:
    """The env's last recorded generation run; None when there is none (or it cannot be read).
    Shared between callers (read-only): parsed again only when the file changed."""
    try:
        return _records.get(generation_path(state_dir, env))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("last generation record for %s unreadable: %s", env, type(exc).__name__)
        return None


def generation_envs(state_dir: Path) -> list[str]:
    folder = state_dir / GENERATION_DIR
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
    except FileNotFoundError:
        return []
    envs = [n[len("last_"):-len(".json")] for n in names if n.startswith("last_") and n.endswith(".json")]
    return [e for e in envs if ENV_PATTERN.match(e)]
