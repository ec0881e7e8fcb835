"""Signals and risk snapshots on the Auto backend: the signal store's member of the ``Failover``.

The process's one ``stores.failover.Failover`` (shared with the Auto backlog store) decides when
this store serves from Postgres and when from the JSONL signal store. On JSONL every write is also
journaled (``outage_journal``: a JSONL-only write would be missing once reads go to Postgres
again) and the failover replays the journal, after the backlog's, before switching back.

A write that fails on Postgres for want of Postgres is served by JSONL and journaled, exactly
like a backlog write: the failover switches every store to its fallback, and the write is
accepted there rather than refused. A refusal by a server that is up (``is_transient``) is a 503
and leaves the stores on Postgres. Fallback writes hold the failover's mutex, so none lands in
the journal after the recovery has replayed it. While on Postgres, each call first replays
what another process journaled meanwhile (a ``stat`` when there is nothing), so no read misses
a write some process acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from services.router.clock import Clock
from services.router.errors import StoreUnavailable
from services.router.signals.models import AnySignal
from services.router.signals.outage_journal import JOURNAL_NAME, JournaledSignalStore, catch_up
from services.router.signals.store import RiskSnapshot, SignalStore, UpsertOutcome
from services.router.signals.store_jsonl import JsonlSignalStore
from services.router.signals.store_postgres import PostgresSignalStore
from services.router.stores.failover import Failover
from services.router.stores.journal_file import JournalFile
from services.router.stores.pg_conn import is_transient

R = TypeVar("R")


class AutoSignalStore:
    name = "signals"

    def __init__(self, dsn: str, *, signals_dir: Path, risk_dir: Path, clock: Clock, failover: Failover,
                 connect_timeout_seconds: float = 3.0) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout_seconds
        self._failover = failover
        self._journal = JournalFile(signals_dir, JOURNAL_NAME)
        self._jsonl = JsonlSignalStore(signals_dir, risk_dir)
        self._fallback = JournaledSignalStore(self._jsonl, self._journal, clock)
        self._pg: PostgresSignalStore | None = None
        failover.join(self)

    @property
    def backend(self) -> str:
        return "postgres" if self._pg is not None else "jsonl"

    # -- the failover's member -------------------------------------------------------------
    def open_postgres(self) -> PostgresSignalStore:
        return PostgresSignalStore(self._dsn, connect_timeout_seconds=self._timeout)

    def replay(self, pg: PostgresSignalStore) -> None:
        catch_up(self._journal, pg)

    def switch(self, pg: PostgresSignalStore | None) -> PostgresSignalStore | None:
        old, self._pg = self._pg, pg
        return old

    def current_postgres(self) -> PostgresSignalStore | None:
        return self._pg

    def catch_up(self) -> None:
        pg = self._pg
        if pg is not None:
            catch_up(self._journal, pg)

    # -- calls -----------------------------------------------------------------------------
    def _call(self, call: Callable[[SignalStore], R], *, write: bool) -> R:
        self._failover.maybe_check()
        while True:
            pg = self._pg
            if pg is not None:
                try:
                    catch_up(self._journal, pg)
                    return call(pg)
                except StoreUnavailable as exc:
                    if is_transient(exc):
                        raise
                    self._failover.lost(self, pg, exc)
            if not write:
                return call(self._fallback)
            with self._failover.mutex:  # excludes a recovery: the write lands in the journal or in Postgres
                if self._pg is None:
                    return call(self._fallback)

    def upsert_many(self, signals: Sequence[AnySignal], *, dry_run: bool = False) -> UpsertOutcome:
        return self._call(lambda s: s.upsert_many(signals, dry_run=dry_run), write=not dry_run)

    def query(
        self, *, env: str | None = None, service: str | None = None, kinds: Iterable[str] | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[AnySignal]:
        return self._call(lambda s: s.query(env=env, service=service, kinds=kinds, since=since, until=until),
                          write=False)

    def services(self, env: str | None = None) -> list[tuple[str, str]]:
        return self._call(lambda s: s.services(env), write=False)

    def put_snapshots(self, snapshots: Sequence[RiskSnapshot], *, keep_newer: bool = False) -> int:
        return self._call(lambda s: s.put_snapshots(snapshots, keep_newer=keep_newer), write=True)

    def snapshots(
        self, *, env: str | None = None, service: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[RiskSnapshot]:
        return self._call(lambda s: s.snapshots(env=env, service=service, since=since, until=until), write=False)

    def count_snapshots_before(self, cutoff: datetime) -> int:
        return self._call(lambda s: s.count_snapshots_before(cutoff), write=False)

    def delete_snapshots_before(self, cutoff: datetime) -> int:
        return self._call(lambda s: s.delete_snapshots_before(cutoff), write=True)

    def close(self) -> None:
        with self._failover.mutex:
            if self._pg is not None:
                self._pg.close()
                self._pg = None
            self._jsonl.close()
            self._journal.close()
