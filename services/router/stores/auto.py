"""Auto backend (the default): Postgres when reachable and migrated, else JSONL (RUNBOOK §1.1).

- Start: open Postgres with a short connect timeout. Success logs ``using PostgresBacklogStore``;
  otherwise a WARNING with the reason (unreachable …, or ``schema missing: run
  ops/scripts/migrate_backlog_postgres.py``) and ``using JsonlBacklogStore``.
- When to leave Postgres and when to come back is the process's one ``stores.failover.Failover``,
  shared with the signal store: on JSONL, Postgres is retried every ``BACKLOG_PG_RETRY_SECONDS``
  — on the next call after the interval, and on a timer in ``serve`` and ``scheduler``
  (``try_recover()`` forces it). Once back, every write accepted meanwhile is replayed (see
  ``fallback_journal``), then the stores switch and the line is logged again.
- A call that fails on Postgres because the connection dropped is served by JSONL: a write is
  journaled and accepted there, not lost. Writes through this store carry an op id that
  Postgres records with the effect, so a write whose commit landed just before the drop is
  not applied twice by the replay. A call Postgres refuses while up (``is_transient``: out of
  memory, conflicts that outlasted the retries) fails with 503 instead, and the store stays on
  Postgres: the fallback's replay would meet the same refusal, and keep the store degraded.
- While degraded, ``status()`` says ``backend="jsonl", degraded=True``, the dashboard carries
  ``"backend"``/``"degraded"``, and ``cleanup`` is skipped (returns 0; the reason is in
  ``last_cleanup_skipped_reason``): it must not delete from a copy that is not the truth.
- Without any DSN there is nothing to fall back from: plain JSONL, not degraded, no journal.
- Signals and risk snapshots served from JSONL while degraded are the signal store's
  (``signals.store_auto``), replayed by the same failover after this store's journal.

Reads on the fallback see what the JSONL files hold (items written there, now or in an earlier
outage), not Postgres' copy. A status change or comment is accepted on the fallback only for an
item the fallback created during the current outage: its copy there is the only one whose state
the fallback knows. Any other item — one it does not hold, or a copy left from an earlier outage
whose state Postgres has since moved on — is refused with ``StoreUnavailable`` (503, retry later)
rather than a misleading 404/409 or an acknowledgement the replay could not honour. A move to the
status the fallback's copy already has is journaled too, so the replay applies it to Postgres'
state (found by the reliability suite: an acknowledged "unchanged" that Postgres never saw).
"""

from __future__ import annotations

import builtins
import functools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from services.router.clock import Clock, default_clock, iso_z
from services.router.domain.changes import Record
from services.router.domain.edits import plan_due_date, plan_owner
from services.router.domain.enums import EventType, Status
from services.router.domain.models import ItemInput, new_id
from services.router.domain.queries import ItemQuery, OverdueIds, Page
from services.router.domain.revisions import Revision, plan_revision
from services.router.domain.transitions import check_transition
from services.router.errors import StoreUnavailable
from services.router.settings import Settings
from services.router.stores.base import (
    DEFAULT_OWNER,
    BacklogStore,
    StoreStatus,
    UpsertRequest,
    WriteResult,
)
from services.router.stores.failover import Failover
from services.router.stores.fallback_journal import Journal, replay
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.pg_conn import is_transient
from services.router.stores.postgres import OpContext, PostgresBacklogStore

log = logging.getLogger("backlog_store")
R = TypeVar("R")
NO_DSN = "no Postgres DSN configured (BACKLOG_POSTGRES_DSN / POSTGRES_DSN)"


class AutoBacklogStore:
    """The backlog's member of the process's ``Failover`` (its own one when none is passed in)."""

    name = "backlog"

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, jsonl_dir: str | Path | None = None,
        retry_seconds: float | None = None, connect_timeout: float | None = None,
        monotonic: Callable[[], float] = time.monotonic, pg_options: dict[str, Any] | None = None,
        failover: Failover | None = None,
    ) -> None:
        self.clock: Clock = clock or default_clock(settings)
        self.last_cleanup_skipped_reason: str | None = None
        self._dir = Path(jsonl_dir) if jsonl_dir is not None else settings.jsonl_dir
        self._timeout = settings.backlog_pg_connect_timeout_seconds if connect_timeout is None else connect_timeout
        self._pg_options = pg_options or {}
        self._owns_failover = failover is None
        self.failover = failover or Failover(
            settings.postgres_dsn_value, monotonic=monotonic,
            retry_seconds=settings.backlog_pg_retry_seconds if retry_seconds is None else retry_seconds)
        self._dsn = self.failover.dsn
        self._mutex = self.failover.mutex
        self._journal = Journal(self._dir)
        self._pg: PostgresBacklogStore | None = None
        self._jsonl: JsonlBacklogStore | None = None
        self._created_on_fallback: set[str] = set()  # ids the fallback created in this outage
        if not self._dsn:
            log.warning("%s; JSONL only", NO_DSN)
            log.warning("using JsonlBacklogStore")
        self.failover.join(self)

    # -- the failover's member -------------------------------------------------------------
    @property
    def backend(self) -> str:
        return "postgres" if self._pg is not None else "jsonl"

    @property
    def reason(self) -> str | None:
        return self.failover.reason if self._dsn else NO_DSN

    @property
    def degraded(self) -> bool:
        return self._pg is None and bool(self._dsn)

    def open_postgres(self) -> PostgresBacklogStore:
        assert self._dsn is not None
        return PostgresBacklogStore(self._dsn, clock=self.clock, connect_timeout=self._timeout, **self._pg_options)

    def replay(self, pg: PostgresBacklogStore) -> None:
        with self._journal.locked():
            replay(self._journal, pg)

    def switch(self, pg: PostgresBacklogStore | None) -> PostgresBacklogStore | None:
        old, self._pg = self._pg, pg
        if pg is not None:
            self._created_on_fallback.clear()  # replayed: the fallback's copies are history now
        return old

    def current_postgres(self) -> PostgresBacklogStore | None:
        return self._pg

    def catch_up(self) -> None:
        pg = self._pg
        if pg is not None and self._journal.has_pending():  # another process accepted writes on its fallback
            self.replay(pg)

    def try_recover(self) -> bool:
        """Retry Postgres now (replaying every member's fallback writes); True when on Postgres."""
        return self.failover.try_recover()

    def _lost(self, pg: PostgresBacklogStore, exc: StoreUnavailable) -> None:
        self.failover.lost(self, pg, exc)

    def _maybe_recover(self) -> None:
        self.failover.maybe_check()

    def _fallback(self) -> JsonlBacklogStore:
        with self._mutex:
            if self._jsonl is None:
                self._jsonl = JsonlBacklogStore(self._dir, clock=self.clock)
            return self._jsonl

    def _read(self, call: Callable[[BacklogStore], R]) -> R:
        self._maybe_recover()
        pg = self._pg
        if pg is not None:
            try:
                return call(pg)
            except StoreUnavailable as exc:
                if is_transient(exc):
                    raise
                self._lost(pg, exc)
        return call(self._fallback())

    def _write(self, kind: str, on_pg: Callable[[PostgresBacklogStore, OpContext], R],
               on_fallback: Callable[[JsonlBacklogStore, str], R]) -> R:
        self._maybe_recover()
        op_id = new_id("op_")
        while True:
            pg = self._pg
            if pg is not None:
                try:
                    return on_pg(pg, OpContext(op_id, kind))
                except StoreUnavailable as exc:
                    if is_transient(exc):
                        raise
                    self._lost(pg, exc)
            with self._mutex:  # excludes a recovery: the op lands in the journal or in Postgres
                if self._pg is None:
                    store = self._fallback()
                    if not self._dsn:
                        return on_fallback(store, "")
                    with self._journal.locked():
                        return on_fallback(store, op_id)

    def _journaled(self, op_id: str, intent: dict[str, Any], write: Callable[[], R],
                   ids: Callable[[R], dict[str, str]] | None = None) -> R:
        """Intent (fsynced) → JSONL write → done/abort. Caller holds the journal lock."""
        if not op_id:  # JSONL only: nothing to replay into
            return write()
        self._journal.append({"op_id": op_id, "ts": iso_z(self.clock.now()), **intent})
        try:
            result = write()
        except BaseException:
            self._journal.append({"op_id": op_id, "kind": "abort"})
            raise
        self._journal.append({"op_id": op_id, "kind": "done", "ids": ids(result) if ids else {}}, sync=False)
        return result

    def _on_fallback(self, store: JsonlBacklogStore, item_id: str) -> Record:
        item = store.get(item_id) if item_id in self._created_on_fallback else None
        if item is None:
            raise StoreUnavailable(f"backlog item {item_id} is not on the JSONL fallback while Postgres is "
                                   "unavailable; retry later", id=item_id)
        return item

    def _fallback_upsert(self, js: JsonlBacklogStore, requests: Sequence[UpsertRequest], actor: str,
                         on_behalf_of: str | None, op_id: str) -> builtins.list[WriteResult]:
        results = js.upsert_many(requests, actor=actor, on_behalf_of=on_behalf_of)
        if op_id:
            self._created_on_fallback.update(r.item["id"] for r in results if r.action == "created")
        return results

    # -- the BacklogStore interface --------------------------------------------------------
    def get(self, item_id: str) -> Record | None:
        return self._read(lambda s: s.get(item_id))

    def get_by_dedupe_key(self, key: str) -> Record | None:
        return self._read(lambda s: s.get_by_dedupe_key(key))

    def get_many_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, Record]:
        return self._read(lambda s: s.get_many_by_dedupe_key(keys))

    def list(self, query: ItemQuery, *, fields: Collection[str] | None = None) -> Page:
        return self._read(lambda s: s.list(query, fields=fields))

    def events(self, item_id: str) -> builtins.list[Record]:
        return self._read(lambda s: s.events(item_id))

    def envs(self) -> builtins.list[str]:
        return self._read(lambda s: s.envs())

    def accepted_items(self, env: str | None = None) -> builtins.list[Record]:
        return self._read(lambda s: s.accepted_items(env))

    def overdue_ids(self, env: str | None, priority: str | None, *, limit: int) -> OverdueIds:
        return self._read(lambda s: s.overdue_ids(env, priority, limit=limit))

    def dashboard(self, env: str | None = None) -> dict[str, Any]:
        numbers = self._read(lambda s: s.dashboard(env))
        return {**numbers, "backend": self.backend, "degraded": self.degraded}

    def upsert(self, item: ItemInput, *, actor: str, fallback_owner: str = DEFAULT_OWNER,
               on_behalf_of: str | None = None) -> WriteResult:
        return self.upsert_many([UpsertRequest(item, fallback_owner)], actor=actor, on_behalf_of=on_behalf_of)[0]

    def upsert_many(self, requests: Sequence[UpsertRequest], *, actor: str,
                    on_behalf_of: str | None = None) -> builtins.list[WriteResult]:
        if not requests:
            return []
        intent = {"kind": "upsert", "actor": actor, "on_behalf_of": on_behalf_of, "requests": [
            {"item": r.item.model_dump(mode="json"), "fallback_owner": r.fallback_owner} for r in requests]}
        return self._write(
            "upsert", lambda pg, op: pg.upsert_many(requests, actor=actor, on_behalf_of=on_behalf_of, op=op),
            lambda js, op_id: self._journaled(
                op_id, intent, lambda: self._fallback_upsert(js, requests, actor, on_behalf_of, op_id),
                lambda rs: {r.item["dedupe_key"]: r.item["id"] for r in rs}),
        )

    def set_status(self, item_id: str, status: Status, *, actor: str, message: str = "",
                   on_behalf_of: str | None = None) -> WriteResult:
        # A refused move raises before the journal; a no-op is journaled too.
        return self._item_write("status", item_id, {"status": status.value, "message": message},
                                lambda s, **op: s.set_status(item_id, status, actor=actor, message=message,
                                                             on_behalf_of=on_behalf_of, **op),
                                lambda row: check_transition(Status(row["status"]), status), actor, on_behalf_of)

    def revise(self, item_id: str, revision: Revision, *, actor: str, on_behalf_of: str | None = None) -> WriteResult:
        return self._item_write("revise", item_id, {"revision": revision.model_dump(mode="json")},
                                lambda s, **op: s.revise(item_id, revision, actor=actor, on_behalf_of=on_behalf_of,
                                                         **op),
                                lambda row: plan_revision(row, revision, now=self.clock.now(), actor=actor),
                                actor, on_behalf_of)

    def set_owner(self, item_id: str, owner: str, *, actor: str, message: str = "",
                  on_behalf_of: str | None = None) -> WriteResult:
        return self._item_write("owner", item_id, {"owner": owner, "message": message},
                                lambda s, **op: s.set_owner(item_id, owner, actor=actor, message=message,
                                                            on_behalf_of=on_behalf_of, **op),
                                lambda row: plan_owner(row, owner, now=self.clock.now(), actor=actor), actor,
                                on_behalf_of)

    def set_due_date(self, item_id: str, due_date: date | None, *, actor: str, message: str = "",
                     on_behalf_of: str | None = None) -> WriteResult:
        due = due_date.isoformat() if due_date is not None else None
        return self._item_write("due_date", item_id, {"due_date": due, "message": message},
                                lambda s, **op: s.set_due_date(item_id, due_date, actor=actor, message=message,
                                                               on_behalf_of=on_behalf_of, **op),
                                lambda row: plan_due_date(row, due_date, now=self.clock.now(), actor=actor), actor,
                                on_behalf_of)

    def _item_write(self, kind: str, item_id: str, fields: dict[str, Any], call: Callable[..., WriteResult],
                    check: Callable[[Record], object], actor: str, on_behalf_of: str | None) -> WriteResult:
        """A change of one item (status, revision, owner, due date): on Postgres with an op id; on
        the fallback journaled with ``fields`` — only for an item the fallback created in this
        outage, and only once ``check`` (the planner, on the fallback's copy) did not refuse it,
        so a refusal writes nothing anywhere."""
        def on_fallback(js: JsonlBacklogStore, op_id: str) -> WriteResult:
            if not op_id:
                return call(js)
            item = self._on_fallback(js, item_id)
            check(item)
            intent = {"kind": kind, "actor": actor, "on_behalf_of": on_behalf_of, "item_id": item_id,
                      "dedupe_key": item["dedupe_key"], **fields}
            return self._journaled(op_id, intent, lambda: call(js))

        return self._write(kind, lambda pg, op: call(pg, op=op), on_fallback)

    def trends(self, env: str | None, service: str | None, weeks: int) -> builtins.list[Record]:
        return self._read(lambda s: s.trends(env, service, weeks))

    def problems(self, env: str, service: str | None = None) -> builtins.list[Record]:
        return self._read(lambda s: s.problems(env, service))

    def add_comment(self, item_id: str, message: str, *, actor: str, on_behalf_of: str | None = None) -> Record:
        return self.add_note(item_id, EventType.COMMENTED, message, {}, actor=actor, on_behalf_of=on_behalf_of)

    def add_note(self, item_id: str, kind: EventType, message: str, meta: Record, *, actor: str,
                 on_behalf_of: str | None = None) -> Record:
        """Comments and other event-only writes (journaled as ``comment`` with the event's type and meta)."""
        def on_fallback(js: JsonlBacklogStore, op_id: str) -> Record:
            write = functools.partial(js.add_note, item_id, kind, message, meta, actor=actor,
                                      on_behalf_of=on_behalf_of)
            if not op_id:
                return write()
            item = self._on_fallback(js, item_id)
            intent = {"kind": "comment", "actor": actor, "on_behalf_of": on_behalf_of, "item_id": item_id,
                      "dedupe_key": item["dedupe_key"], "message": message, "event_type": kind.value, "meta": meta}
            return self._journaled(op_id, intent, write)

        return self._write("comment", lambda pg, op: pg.add_note(item_id, kind, message, meta, actor=actor,
                                                                 on_behalf_of=on_behalf_of, op=op), on_fallback)

    def cleanup(self, retention_days: int) -> int:
        self._maybe_recover()
        if self.degraded:
            self.last_cleanup_skipped_reason = (
                f"store is degraded (running on the JSONL fallback: {self.reason}); cleanup waits for Postgres")
            log.info("cleanup skipped: %s", self.last_cleanup_skipped_reason)
            return 0
        self.last_cleanup_skipped_reason = None
        return self._read(lambda s: s.cleanup(retention_days))

    def status(self) -> StoreStatus:
        self._maybe_recover()
        pg = self._pg
        if pg is not None:
            return StoreStatus(backend="postgres", detail=pg.status().detail)
        detail: dict[str, Any] = {"reason": self.reason}
        if self._dsn:
            detail["retry_in_seconds"] = self.failover.retry_in_seconds()
            detail["journal_pending"] = self._journal.has_pending()
        return StoreStatus(backend="jsonl", degraded=self.degraded, detail=detail)

    def close(self) -> None:
        with self._mutex:
            if self._owns_failover:
                self.failover.stop()
            if self._pg is not None:
                self._pg.close()
                self._pg = None
            if self._jsonl is not None:
                self._jsonl.close()
                self._jsonl = None
            self._journal.close()
