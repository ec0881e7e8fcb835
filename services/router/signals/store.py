"""Where signals and hourly risk snapshots live: one protocol, memory/JSONL/Postgres backends.

Signals are keyed by (``kind``, ``id``): a resend replaces the stored version only when
something changed, so a webhook retried ten times writes once. Snapshots are keyed by
(``env``, ``service``, ``slot``) where ``slot`` is the hour the score describes: a re-run in the
same hour replaces it, and a re-run that computes the same score writes nothing. A replay of
snapshots computed earlier (``keep_newer``: the Auto store's outage journal) never replaces one
computed later.

``IndexedSignalStore`` is the whole memory backend (dicts under a lock, as simple as a mock);
the JSONL backend adds a file log under the same planning code, so both behave identically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.router.domain.models import Slug
from services.router.signals.models import AnySignal, UtcDatetime


def hour_slot(at: datetime) -> datetime:
    """The hourly slot an instant belongs to (UTC, minutes and below dropped)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _on_the_hour(value: datetime) -> datetime:
    if value != hour_slot(value):
        raise ValueError("slot must be on the hour (UTC)")
    return value


class RiskSnapshot(BaseModel):
    """One service's risk score for one hourly slot, with the parts that make it up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Slug
    service: Slug
    slot: Annotated[UtcDatetime, AfterValidator(_on_the_hour)]
    score: float = Field(ge=0, le=100)
    band: str
    parts: dict[str, float] = Field(default_factory=dict)
    computed_at: UtcDatetime

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.env, self.service, self.slot)

    def same_score(self, other: RiskSnapshot) -> bool:
        """Equal but for when it was computed: replacing it would change nothing."""
        return (self.score, self.band, self.parts) == (other.score, other.band, other.parts)

    def record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(slots=True)
class UpsertOutcome:
    """What a batch upsert did, per signal key in input order."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, action)

    def to_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@runtime_checkable
class SignalStore(Protocol):
    @property
    def backend(self) -> str:
        """``memory``, ``jsonl`` or ``postgres``: what serves the calls now (Auto: either of the last two)."""

    def upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool = False) -> UpsertOutcome: ...
    def query(
        self, *, env: str | None = None, service: str | None = None, kinds: Iterable[str] | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AnySignal]: ...
    def services(self, env: str | None = None) -> list[tuple[str, str]]: ...
    def put_snapshots(self, snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False) -> int: ...
    def snapshots(
        self, *, env: str | None = None, service: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[RiskSnapshot]: ...
    def count_snapshots_before(self, cutoff: datetime) -> int: ...
    def delete_snapshots_before(self, cutoff: datetime) -> int: ...
    def close(self) -> None: ...


def plan_upsert(
    existing: dict[tuple[str, str], AnySignal], signals: Sequence[AnySignal]
) -> tuple[list[AnySignal], UpsertOutcome]:
    """Which signals to write: new keys and real changes; the last of duplicates in a batch wins."""
    latest: dict[tuple[str, str], AnySignal] = {}
    for signal in signals:
        latest.pop(signal.key, None)
        latest[signal.key] = signal
    outcome = UpsertOutcome()
    writes: list[AnySignal] = []
    decided: dict[tuple[str, str], str] = {}
    for key, signal in latest.items():
        old = existing.get(key)
        if old is None:
            action = "created"
        elif old == signal or is_stale(old, signal):
            action = "unchanged"
        else:
            action = "updated"
        decided[key] = action
        setattr(outcome, action, getattr(outcome, action) + 1)
        if action != "unchanged":
            writes.append(signal)
    outcome.actions = [(s.kind_name, s.id, decided[s.key]) for s in signals]
    return writes, outcome


def is_stale(old: AnySignal, new: AnySignal) -> bool:
    """A delayed "firing" retry of an alert that already resolved must not reopen it.

    Alertmanager keeps the fingerprint when an alert fires again but gives it a new
    ``startsAt``, so a firing notice with the same start as a stored resolution is older news.
    """
    return (
        old.kind_name == "alert" and new.kind_name == "alert"
        and getattr(old, "status", None) == "resolved" and getattr(new, "status", None) == "firing"
        and getattr(old, "starts_at", None) == getattr(new, "starts_at", None)
    )


SnapshotKey = tuple[str, str, datetime]


def plan_snapshots(
    existing: Mapping[SnapshotKey, RiskSnapshot], snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False
) -> list[RiskSnapshot]:
    """Which snapshots to write: new slots and changed scores; the last of a slot in a batch wins.

    ``keep_newer`` is for snapshots computed a while ago and written only now (replaying what
    was accepted on JSONL during a Postgres outage): a stored snapshot computed later is the
    newer re-run of that hour, so the replayed one is older news and must not replace it.
    """
    writes: list[RiskSnapshot] = []
    for key, snap in {s.key: s for s in snapshots}.items():
        old = existing.get(key)
        if old is not None and (old.same_score(snap) or (keep_newer and old.computed_at > snap.computed_at)):
            continue
        writes.append(snap)
    return writes


def matches(
    signal: AnySignal, env: str | None, service: str | None, kinds: frozenset[str] | None,
    since: datetime | None, until: datetime | None,
) -> bool:
    if env is not None and signal.env != env:
        return False
    if service is not None and signal.service != service:
        return False
    if kinds is not None and signal.kind_name not in kinds:
        return False
    at = signal.occurred_at
    return (since is None or at >= since) and (until is None or at <= until)


def in_period(slot: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or slot >= since) and (until is None or slot <= until)


class IndexedSignalStore:
    """Signals and snapshots in dicts; subclasses add locking across processes and durability."""

    backend = "memory"

    def __init__(self) -> None:
        self.signals: dict[tuple[str, str], AnySignal] = {}
        self.snaps: dict[SnapshotKey, RiskSnapshot] = {}
        self._mutex = threading.RLock()

    # -- hooks (JSONL overrides) ---------------------------------------------------------
    @contextmanager
    def _locked_signals(self) -> Iterator[None]:
        with self._mutex:
            yield

    @contextmanager
    def _locked_snapshots(self) -> Iterator[None]:
        with self._mutex:
            yield

    def _refresh(self) -> None:
        """Bring the dicts up to date for a read (JSONL: parse what others appended)."""

    def _persist_signals(self, signals: Sequence[AnySignal]) -> None:
        for signal in signals:
            self.signals[signal.key] = signal

    def _persist_snapshots(self, snapshots: Sequence[RiskSnapshot]) -> None:
        for snap in snapshots:
            self.snaps[snap.key] = snap

    def _drop_snapshots(self, keys: Sequence[tuple[str, str, datetime]]) -> None:
        for key in keys:
            del self.snaps[key]

    # -- signals -------------------------------------------------------------------------
    def upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool = False) -> UpsertOutcome:
        if dry_run:
            self._refresh()
            with self._mutex:
                return plan_upsert(self.signals, signals)[1]
        with self._locked_signals():
            writes, outcome = plan_upsert(self.signals, signals)
            if writes:
                self._persist_signals(writes)
        return outcome

    def query(
        self, *, env: str | None = None, service: str | None = None, kinds: Iterable[str] | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AnySignal]:
        self._refresh()
        wanted = frozenset(kinds) if kinds is not None else None
        with self._mutex:
            hits = [s for s in self.signals.values() if matches(s, env, service, wanted, since, until)]
        return sorted(hits, key=lambda s: (s.occurred_at, s.kind_name, s.id))

    def services(self, env: str | None = None) -> list[tuple[str, str]]:
        self._refresh()
        with self._mutex:
            pairs = {(s.env, s.service) for s in self.signals.values() if env is None or s.env == env}
        return sorted(pairs)

    # -- snapshots -----------------------------------------------------------------------
    def put_snapshots(self, snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False) -> int:
        with self._locked_snapshots():
            writes = plan_snapshots(self.snaps, snapshots, keep_newer=keep_newer)
            if writes:
                self._persist_snapshots(writes)
        return len(writes)

    def snapshots(
        self, *, env: str | None = None, service: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[RiskSnapshot]:
        self._refresh()
        with self._mutex:
            hits = [
                s for s in self.snaps.values()
                if (env is None or s.env == env) and (service is None or s.service == service)
                and in_period(s.slot, since, until)
            ]
        return sorted(hits, key=lambda s: (s.env, s.service, s.slot))

    def count_snapshots_before(self, cutoff: datetime) -> int:
        self._refresh()
        with self._mutex:
            return sum(1 for k in self.snaps if k[2] < cutoff)

    def delete_snapshots_before(self, cutoff: datetime) -> int:
        with self._locked_snapshots():
            old = [k for k in self.snaps if k[2] < cutoff]
            if old:
                self._drop_snapshots(old)
        return len(old)

    def close(self) -> None:
        """Nothing to release for dicts."""


class MemorySignalStore(IndexedSignalStore):
    """Tests and ``BACKLOG_BACKEND=memory``."""
