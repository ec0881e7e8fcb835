"""One failover policy for every Postgres-backed store of a process (the Auto backend, RUNBOOK §1.1).

Why one: the backlog, the signals and the risk snapshots live on the same server, so they are
either all on Postgres or all on their JSONL fallbacks — a process that served backlog items from
Postgres and signals from JSONL would write a digest from half the truth. The Auto stores
(``stores.auto.AutoBacklogStore``, ``signals.store_auto.AutoSignalStore``) are *members* of one
``Failover``; it alone decides when to leave Postgres and when to come back.

- **Going down**: a member whose Postgres call fails for want of Postgres calls ``lost()``; every
  member switches to its fallback at once, with the runbook's warning (``using JsonlBacklogStore``).
- **Coming back**: every ``BACKLOG_PG_RETRY_SECONDS`` (300) the failover opens Postgres for every
  member, replays each member's journal of writes accepted on the fallback (backlog first, then
  signals), and only then switches them all back (``using PostgresBacklogStore``). A member that
  cannot open or replay keeps them all on the fallback until the next attempt.
- **While up**: the same check replays journals that *other* processes left (a CLI run during an
  outage), so their writes reach Postgres without waiting for that process.
- **The timer**: a call on any member runs the check lazily once it is due; long-running
  processes (``backlog serve``, ``backlog scheduler``) also ``start()`` a timer thread, so a router
  that receives no requests still returns to Postgres and replays within the retry interval.

``mutex`` is held by a recovery and by every write served from a fallback, so a write lands
either in a journal that the recovery replays or in Postgres — never in a journal already replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from services.router.dsn import scrub
from services.router.errors import StoreUnavailable

log = logging.getLogger("backlog_store")
MIN_TIMER_SECONDS = 0.2  # BACKLOG_PG_RETRY_SECONDS=0 checks on every call, and the timer not in a busy loop


class Closable(Protocol):
    def close(self) -> None: ...


class Member(Protocol):
    """A store with a Postgres side and a fallback side, switched by the failover."""

    name: str

    def open_postgres(self) -> Closable:
        """Open this store's Postgres side (``StoreUnavailable`` when it cannot)."""

    def replay(self, pg: Any) -> None:
        """Apply this store's journal of fallback writes to ``pg`` and empty it (``StoreUnavailable``:
        Postgres went away mid-way; the journal is kept and the next attempt starts over)."""

    def switch(self, pg: Any) -> Closable | None:
        """Serve from ``pg`` (None: from the fallback); returns the Postgres side it served before."""

    def current_postgres(self) -> Any:
        """The Postgres side it serves from now (None on the fallback)."""

    def catch_up(self) -> None:
        """While on Postgres: replay what another process journaled (cheap when there is nothing)."""


class Failover:
    def __init__(self, dsn: str | None, *, retry_seconds: float, monotonic: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self.mutex = threading.RLock()
        self.reason: str | None = None
        self._monotonic = monotonic
        self._members: list[Member] = []
        self._up = False
        self._tried = False
        self._next_check = 0.0
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return bool(self.dsn) and not self._up

    def retry_in_seconds(self) -> float:
        return max(0.0, round(self._next_check - self._monotonic(), 1))

    # -- members ---------------------------------------------------------------------------
    def join(self, member: Member) -> None:
        """Add a store; the first one triggers the first connection attempt (at startup)."""
        with self.mutex:
            self._members.append(member)
            if not self.dsn:
                return
            if not self._tried:
                self._connect()
            elif self._up:
                self._attach(member)

    def _attach(self, member: Member) -> None:
        """A member joining while the others are on Postgres: open and replay it, or degrade all."""
        try:
            pg = member.open_postgres()
        except StoreUnavailable as exc:
            self._close(self._switch_all_to_fallback(exc.message))
            return
        try:
            member.replay(pg)
        except StoreUnavailable as exc:
            pg.close()
            self._close(self._switch_all_to_fallback(f"replay interrupted: {exc.message}"))
            return
        except BaseException:
            pg.close()
            raise
        member.switch(pg)

    # -- switching -------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Open Postgres for every member, replay every journal, switch. Caller holds the mutex."""
        self._tried = True
        self._next_check = self._monotonic() + self.retry_seconds
        opened: list[tuple[Member, Closable]] = []
        stage = ""
        try:
            for member in self._members:
                opened.append((member, member.open_postgres()))
            stage = "replay interrupted: "
            for member, pg in opened:
                member.replay(pg)
        except StoreUnavailable as exc:
            for _, pg in opened:
                pg.close()
            self._degrade(stage + exc.message)
            return False
        except BaseException:
            for _, pg in opened:
                pg.close()
            raise
        for member, pg in opened:
            member.switch(pg)
        self._up, self.reason = True, None
        log.info("using PostgresBacklogStore")
        return True

    def _degrade(self, reason: str) -> None:
        reason = scrub(reason, self.dsn)
        first = self.reason is None or self._up
        self._up, self.reason = False, reason
        self._next_check = self._monotonic() + self.retry_seconds
        if first:
            log.warning("%s; serving from JSONL, retrying every %ss", reason, self.retry_seconds)
            log.warning("using JsonlBacklogStore")
        else:
            log.info("still no Postgres (%s); next retry in %ss", reason, self.retry_seconds)

    def _switch_all_to_fallback(self, reason: str) -> list[Closable]:
        """Caller holds the mutex; returns the Postgres sides to close (outside it)."""
        left = [pg for pg in (m.switch(None) for m in self._members) if pg is not None]
        self._degrade(reason)
        return left

    def lost(self, member: Member, pg: Any, exc: StoreUnavailable) -> None:
        """A call on ``pg`` failed for want of Postgres: every member goes to its fallback.

        Nothing happens when ``member`` no longer serves ``pg`` (another thread already switched)."""
        with self.mutex:
            if member.current_postgres() is not pg or not self._up:
                return
            left = self._switch_all_to_fallback(exc.message)
        self._close(left)  # outside the mutex: fallback writers need not wait for the pools' workers

    @staticmethod
    def _close(handles: list[Closable]) -> None:
        for handle in handles:
            handle.close()

    def try_recover(self) -> bool:
        """Retry Postgres now (replaying the fallbacks' writes); True when on Postgres."""
        with self.mutex:
            if self._up or not self.dsn:
                return self._up
            return self._connect()

    def maybe_check(self) -> None:
        """Run ``check`` if it is due: every store call does this (one clock read when it is not)."""
        if self.dsn and self._monotonic() >= self._next_check:
            self.check()

    def check(self) -> None:
        """On the fallback: try Postgres. On Postgres: replay journals other processes left."""
        if not self.dsn:
            return
        with self.mutex:
            if not self._up:
                self._connect()
                return
            self._next_check = self._monotonic() + self.retry_seconds
            for member in list(self._members):
                try:
                    member.catch_up()
                except StoreUnavailable as exc:
                    self._close(self._switch_all_to_fallback(exc.message))
                    return

    # -- the timer of long-running processes -----------------------------------------------
    def start(self) -> None:
        """Check on a timer thread too (``serve``, ``scheduler``): recovery needs no request."""
        if not self.dsn or self._timer is not None:
            return
        self._stop.clear()
        self._timer = threading.Thread(target=self._run, name="postgres-failover", daemon=True)
        self._timer.start()

    def _run(self) -> None:
        while not self._stop.wait(max(MIN_TIMER_SECONDS, self._next_check - self._monotonic())):
            try:
                self.maybe_check()
            except Exception:  # a bug must not end the timer: the next check tries again
                log.exception("Postgres failover check failed")

    def stop(self) -> None:
        self._stop.set()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.join(timeout=10)
