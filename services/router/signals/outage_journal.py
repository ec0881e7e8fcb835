"""Signal writes accepted on JSONL while the Auto store is degraded, and their replay into Postgres.

Why: during a Postgres outage the Auto signal store (``store_auto``) serves signals and risk
snapshots from the JSONL signal store, and once Postgres is back every read (digests, risk history) goes to
Postgres again — which would silently miss what was ingested meanwhile (an Alertmanager webhook
that got a 2xx). So each such write is also journaled, and replayed when Postgres returns.

Like the backlog's journal, this one records *requests*, not records: a resend that the JSONL
copy calls "unchanged" may still be news to Postgres, and the replay must apply each request to
whatever Postgres holds by the store's own rules. File ``signals_journal.jsonl`` in the signals
folder (a ``JournalFile`` like the backlog's journal: fsynced appends, ``flock``, in-place clear):

- ``{"op_id", "kind": "signals", "ts", "signals": [...]}`` — one ``upsert_many`` (not dry runs);
- ``{"op_id", "kind": "snapshots", "ts", "snapshots": [...]}`` — one ``put_snapshots``.

The JSONL write comes first and the journal line second, both under the journal's lock, and the
caller is answered only after both: an acknowledged write is always in the journal; one that
failed half-way was not acknowledged, and its client's resend is journaled again.

Replay applies the requests in order with ``upsert_many`` (``plan_upsert``: an equal resend
writes nothing, a delayed "firing" never reopens an alert Postgres holds as resolved) and
``put_snapshots(keep_newer=True)`` (a snapshot Postgres holds that was computed later stays).
Applying the same requests in the same order again reaches the same state, so a replay
interrupted anywhere (crash, Postgres gone again) and run again gives the same result; the
journal is emptied only after a complete replay. A request the target refuses for good (not an
outage) goes to ``signals_journal.failed.jsonl`` for an operator instead of blocking the rest.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.router.clock import Clock, iso_z
from services.router.domain.models import new_id
from services.router.signals.models import AnySignal, parse_signal
from services.router.signals.store import RiskSnapshot, SignalStore, UpsertOutcome
from services.router.stores.journal_file import Entry, JournalFile
from services.router.stores.journal_file import replay as replay_entries

log = logging.getLogger("signal_store")

JOURNAL_NAME = "signals_journal"


class JournaledSignalStore:
    """The JSONL signal store as seen during an outage: writes are journaled for the replay.

    Reads and snapshot cleanup pass through: cleanup is not replayed, since the daily
    ``risk_history_cleanup`` removes the same old slots from Postgres once it is back.
    """

    backend = "jsonl"

    def __init__(self, store: SignalStore, journal: JournalFile, clock: Clock) -> None:
        self._store = store
        self._journal = journal
        self._clock = clock

    def _append(self, kind: str, records: list[dict[str, Any]]) -> None:
        self._journal.append({"op_id": new_id("op_"), "kind": kind, "ts": iso_z(self._clock.now()), kind: records})

    def upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool = False) -> UpsertOutcome:
        if dry_run or not signals:
            return self._store.upsert_many(signals, dry_run=dry_run)
        with self._journal.locked():
            outcome = self._store.upsert_many(signals)
            self._append("signals", [s.record() for s in signals])
        return outcome

    def put_snapshots(self, snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False) -> int:
        if not snapshots:
            return 0
        with self._journal.locked():
            written = self._store.put_snapshots(snapshots, keep_newer=keep_newer)
            self._append("snapshots", [s.record() for s in snapshots])
        return written

    def query(
        self, *, env: str | None = None, service: str | None = None, kinds: Iterable[str] | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AnySignal]:
        return self._store.query(env=env, service=service, kinds=kinds, since=since, until=until)

    def services(self, env: str | None = None) -> list[tuple[str, str]]:
        return self._store.services(env)

    def snapshots(
        self, *, env: str | None = None, service: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[RiskSnapshot]:
        return self._store.snapshots(env=env, service=service, since=since, until=until)

    def count_snapshots_before(self, cutoff: datetime) -> int:
        return self._store.count_snapshots_before(cutoff)

    def delete_snapshots_before(self, cutoff: datetime) -> int:
        return self._store.delete_snapshots_before(cutoff)

    def close(self) -> None:
        """The JSONL store and the journal belong to the Auto signal store, which closes them."""


def apply_request(target: SignalStore, record: dict[str, Any]) -> str:
    """One journaled request against ``target``; returns what it did, for the log."""
    kind = record["kind"]
    if kind == "signals":
        outcome = target.upsert_many([parse_signal(r) for r in record["signals"]])
        return ", ".join(f"{k} {v}" for k, v in outcome.to_dict().items())
    if kind == "snapshots":
        written = target.put_snapshots([RiskSnapshot.model_validate(r) for r in record["snapshots"]], keep_newer=True)
        return f"written {written}"
    raise ValueError(f"unknown request kind {kind!r}")


def replay(journal: JournalFile, target: SignalStore) -> Counter[str]:
    """Apply every journaled request to ``target`` and empty the journal (``journal_file.replay``):
    outcomes by request kind, and ``failed``. Caller holds ``journal.locked()``."""
    entries = [Entry(f"{r['kind']} {r['op_id']}", r, functools.partial(_outcome, target, r)) for r in journal.records()]
    return replay_entries(journal, entries, what="signal write(s)", stage="signals_replay:after_op",
                          logger=log)


def _outcome(target: SignalStore, record: dict[str, Any]) -> str:
    done = apply_request(target, record)
    log.debug("replayed %s %s: %s", record["kind"], record["op_id"], done)
    return str(record["kind"])


def catch_up(journal: JournalFile, target: SignalStore) -> None:
    """Replay what is pending (a stat when nothing is), so ``target`` is complete before use."""
    if not journal.has_pending():
        return
    with journal.locked():
        if journal.has_pending():  # another thread or process may have replayed it meanwhile
            replay(journal, target)
