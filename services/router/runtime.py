"""Wiring: settings → clock → store → tool registry, built once per process and passed down."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.router.clock import Clock, default_clock
from services.router.settings import Settings, load_settings
from services.router.signals.rejections import RejectionTally
from services.router.stores.base import BacklogStore
from services.router.stores.factory import open_store
from services.router.tools.catalog import build_registry
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: BacklogStore
    registry: ToolRegistry
    policy_path: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    rejections: RejectionTally = field(default_factory=RejectionTally)
    """Rejected signals of this process, for ``backlog_signals_rejected_total``."""

    def context(self, actor: str) -> ToolContext:
        return ToolContext(self.store, self.settings, self.clock, actor, self.policy_path, rejections=self.rejections)

    def execute(self, actor: str, tool: str, action: str, params: dict[str, Any]) -> Any:
        return self.registry.execute(self.context(actor), tool, action, params)

    def close(self) -> None:
        """Release the backlog store and the signal and tracker link stores opened for it (pools, files)."""
        from services.router.signals.backend import close_signal_stores
        from services.router.stores.tracker_link_factory import close_link_stores

        for extra in self.extras.values():  # background work first (tracker pulls use the stores)
            closer = getattr(extra, "close", None)
            if callable(closer):
                closer()
        self.store.close()
        close_signal_stores()
        close_link_stores()


def build_runtime(
    settings: Settings | None = None, *, clock: Clock | None = None, store: BacklogStore | None = None,
    policy_path: Path | None = None,
) -> Runtime:
    from services.router.signals.backend import attach_outage_replay

    settings = settings or load_settings()
    clock = clock or default_clock(settings)
    store = store or open_store(settings, clock=clock)
    attach_outage_replay(store, settings)  # the Auto store's recovery replays signals too
    return Runtime(settings, clock, store, build_registry(), policy_path)


def configure_logging(default_level: str = "WARNING", settings: Settings | None = None) -> None:
    """Structured enough for grep, and ``backlog_store: using …`` reads as the runbook shows.

    ``BACKLOG_LOG_LEVEL`` (validated by ``Settings``) overrides the command's default level."""
    level = (settings or load_settings()).log_level(default_level)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
