"""Wiring: settings → clock → stores → tool registry, built once per process and passed down.

Each store is opened once here — the backlog store and the signal store that matches it (on the
Auto backend both join one ``stores.failover.Failover``) — and handed to every tool call in its
context. Long-running processes (``serve``, ``scheduler``) call ``start_background()`` so the
failover retries Postgres on its own timer, with no request needed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.router.clock import Clock, default_clock
from services.router.settings import Settings, load_settings
from services.router.signals.backend import open_signal_store
from services.router.signals.rejections import RejectionTally
from services.router.signals.store import SignalStore
from services.router.stores.base import BacklogStore
from services.router.stores.factory import open_store
from services.router.stores.failover import Failover
from services.router.tools.catalog import build_registry
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: BacklogStore
    signals: SignalStore
    registry: ToolRegistry
    policy_path: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    rejections: RejectionTally = field(default_factory=RejectionTally)
    """Rejected signals of this process, for ``backlog_signals_rejected_total``."""

    def context(self, actor: str, on_behalf_of: str | None = None) -> ToolContext:
        return ToolContext(self.store, self.settings, self.clock, actor, self.policy_path, self.signals,
                           rejections=self.rejections, on_behalf_of=on_behalf_of)

    def execute(self, actor: str, tool: str, action: str, params: dict[str, Any], *,
                on_behalf_of: str | None = None) -> Any:
        """Run an action as ``actor`` (an account), for ``on_behalf_of`` (a person) when a delegate names one."""
        return self.registry.execute(self.context(actor, on_behalf_of), tool, action, params)

    @property
    def failover(self) -> Failover | None:
        """The Auto stores' shared failover (None on the other backends)."""
        failover = getattr(self.store, "failover", None)
        return failover if isinstance(failover, Failover) else None

    def start_background(self) -> None:
        """For ``serve`` and ``scheduler``: retry Postgres (and replay the journals) on a timer."""
        if self.failover is not None:
            self.failover.start()

    def close(self) -> None:
        """Stop the timer and background work (tracker pulls use the stores), then release the
        stores (pools, file handles): the tracker link store that went with the backlog store too."""
        from services.router.stores.tracker_link_factory import close_link_store

        if self.failover is not None:
            self.failover.stop()
        for extra in self.extras.values():
            closer = getattr(extra, "close", None)
            if callable(closer):
                closer()
        close_link_store(self.store)
        self.signals.close()
        self.store.close()


def build_runtime(
    settings: Settings | None = None, *, clock: Clock | None = None, store: BacklogStore | None = None,
    signals: SignalStore | None = None, policy_path: Path | None = None,
) -> Runtime:
    settings = settings or load_settings()
    clock = clock or default_clock(settings)
    store = store or open_store(settings, clock=clock)
    try:
        signals = signals or open_signal_store(settings, store, clock)
    except BaseException:
        store.close()
        raise
    return Runtime(settings, clock, store, signals, build_registry(), policy_path)


def configure_logging(default_level: str = "WARNING", settings: Settings | None = None) -> None:
    """Structured enough for grep, and ``backlog_store: using …`` reads as the runbook shows.

    ``BACKLOG_LOG_LEVEL`` (validated by ``Settings``) overrides the command's default level."""
    level = (settings or load_settings()).log_level(default_level)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
