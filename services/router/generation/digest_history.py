"""The digests before the one a generation reads, newest first, as the rules see them.

Resolve on clear (``generation.clearing``) asks whether a category's rules held for a service in
each of the last ``clear_after_digests`` digests: the current one is the run's own, the earlier
ones come from here — the same folder and file names as ``digest_lookup`` (only real weeks /
dates, no symlink out of the folder), older than the current digest, read lazily one at a time
and only while some lineage is still undecided. A digest file that fails to validate stops the
walk with the same ``ValidationFailed`` generation raises for the current one: a clearing is
never decided on a digest nobody could read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.router.domain.weeks import parse_week
from services.router.generation.digest import PLATFORM_DIR, RISK_DIR, load_platform_digest, load_risk_digest
from services.router.generation.digest_lookup import date_files, week_files
from services.router.generation.facts import DigestFacts

MAX_LOOKBACK = 52  # digests read at most, however many services stay missing


@dataclass(frozen=True, slots=True)
class DigestSignals:
    """One env of one digest: each service's signals (None: the env has no section there)."""

    name: str  # ``platform/2026-W47.json``
    services: Mapping[str, Mapping[str, Any]] | None


def current_signals(facts: DigestFacts) -> DigestSignals:
    return DigestSignals(facts.file, {s.service: s.signals for s in facts.services})


def earlier_signals(reports_dir: Path, facts: DigestFacts) -> Iterator[DigestSignals]:
    """The env's section of each digest before ``facts``'s, newest first (at most ``MAX_LOOKBACK``)."""
    if facts.kind == "weekly":
        here = parse_week(facts.week)
        folder = reports_dir / PLATFORM_DIR
        weeks = [path for order, path in week_files(folder) if order < here]
        for path in reversed(weeks[-MAX_LOOKBACK:]):
            digest = load_platform_digest(path, f"{PLATFORM_DIR}/{path.name}")
            section = digest.envs.get(facts.env)
            yield DigestSignals(f"{PLATFORM_DIR}/{path.name}", None if section is None else {
                s.service: {**s.signals.__dict__, "pressure_score": s.pressure_score, "band": s.band}
                for s in section.services})
        return
    folder = reports_dir / RISK_DIR
    days = [path for day, path in date_files(folder) if facts.day is None or day < facts.day]
    for path in reversed(days[-MAX_LOOKBACK:]):
        risk = load_risk_digest(path, f"{RISK_DIR}/{path.name}")
        env = risk.envs.get(facts.env)
        yield DigestSignals(f"{RISK_DIR}/{path.name}", None if env is None else {
            s.service: {"risk_score": s.score, "risk_band": s.band, "delta_24h": s.delta_24h, "delta_7d": s.delta_7d}
            for s in env.services})
