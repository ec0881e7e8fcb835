"""What generation reads from a digest: one env's services as the rules see them (pure).

A platform digest (weekly) and a risk digest (daily) become the same ``DigestFacts``, so the
candidates, the plan and the wording need not know which kind they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from services.router.domain.enums import Source
from services.router.domain.text import signed
from services.router.domain.weeks import iso_week
from services.router.generation.digest import Evidence, Found, PlatformDigest, PlatformSignals, RiskDigest
from services.router.generation.wording import MAX_EVIDENCE_LINES, SIGNAL_LABELS

Kind = Literal["weekly", "daily"]


# Plain slots (hashable as a frozen one): one per service of a digest of thousands, and a
# frozen dataclass costs four times as much to build. Nothing changes one once it is made.
@dataclass(slots=True, unsafe_hash=True)
class ServiceFacts:
    """One service of one env as the rules see it, whichever digest it came from."""

    service: str
    score: float
    band: str
    signals: Mapping[str, Any]
    evidence: Sequence[Evidence] = ()
    context: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class DigestFacts:
    """One env of one digest: the input of ``build_candidates``."""

    kind: Kind
    env: str
    week: str
    file: str
    services: Sequence[ServiceFacts]
    sample: bool = False
    day: date | None = None

    @property
    def source(self) -> Source:
        return Source.WEEKLY_PRESSURE_DIGEST if self.kind == "weekly" else Source.DAILY_RISK_DIGEST

    @property
    def score_name(self) -> str:
        return "pressure_score" if self.kind == "weekly" else "risk_score"

    @property
    def title(self) -> str:
        if self.kind == "weekly":
            return f"weekly platform digest {self.week} ({self.file})"
        return f"daily risk digest {self.day} ({self.file})"


def weekly_facts(found: Found[PlatformDigest], env: str) -> DigestFacts:
    """The env's section of a platform digest; the caller has checked the env is there."""
    digest = found.digest
    services: list[ServiceFacts] = []
    append = services.append
    fields, form = SIGNAL_FORMAT
    for s in digest.envs[env].services:
        figures = dict(s.signals.__dict__)  # the validated fields, as ``model_dump()`` gives them
        try:
            if tuple(figures) != fields:
                raise ValueError("not the fields of a validated PlatformSignals")
            shown = form(*figures.values())
        except (TypeError, ValueError):  # each field as it comes
            shown = ", ".join([
                f"{SIGNAL_LABELS[k]} {signed(v, missing='unknown') if k == 'risk_delta_7d' else f'{v:g}'}"
                for k, v in figures.items()])
        score, band = s.pressure_score, s.band
        figures["pressure_score"] = score
        figures["band"] = band
        append(ServiceFacts(s.service, score, band, figures, s.evidence,  # positional: a digest has thousands
                            (f"Pressure {score:g} (band {band}). Signals: {shown}.",)))
    return DigestFacts("weekly", env, digest.week, found.name, services, digest.sample)


def _signal_format() -> tuple[tuple[str, ...], Callable[..., str]]:
    """The fields of ``PlatformSignals`` and one format string showing them all, as ``weekly_facts``
    shows each (``risk avg 7d 45.2, …, Δ risk 7d -3.1, …``): one call per service, not nine."""
    fields = tuple(PlatformSignals.model_fields)
    return fields, ", ".join(f"{SIGNAL_LABELS[k]} {{{i}:{'+g' if k == 'risk_delta_7d' else 'g'}}}"
                             for i, k in enumerate(fields)).format


SIGNAL_FORMAT = _signal_format()


def daily_facts(found: Found[RiskDigest], env: str) -> DigestFacts:
    """The env's section of a risk digest; the week is the ISO week of the digest's date."""
    digest = found.digest
    services = []
    for s in digest.envs[env].services:
        parts = ", ".join(f"{k} {v:g}" for k, v in sorted(s.parts.items(), key=lambda kv: -kv[1]) if v)
        context = [f"Risk {s.score:g} (band {s.band}); change 24h {signed(s.delta_24h, missing='unknown')}, "
                   f"7d {signed(s.delta_7d, missing='unknown')}. Parts: {parts or 'none'}."]
        context += [f"- {line}" for line in s.why[:MAX_EVIDENCE_LINES]]
        services.append(ServiceFacts(
            service=s.service, score=s.score, band=s.band, context=tuple(context),
            signals={"risk_score": s.score, "risk_band": s.band, "delta_24h": s.delta_24h, "delta_7d": s.delta_7d},
        ))
    return DigestFacts("daily", env, iso_week(digest.date), found.name, services, digest.sample, digest.date)
