"""What an action runs with: the store, settings, the clock and who is acting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from services.router.clock import Clock
from services.router.policy import BacklogPolicy, load_policy
from services.router.service_catalog import CatalogOwner, load_catalog
from services.router.settings import Settings
from services.router.stores.base import BacklogStore

if TYPE_CHECKING:
    from services.router.signals.rejections import RejectionTally
    from services.router.signals.store import SignalStore


@dataclass
class ToolContext:
    store: BacklogStore
    settings: Settings
    clock: Clock
    actor: str = "cli"
    policy_path: Path | None = None
    signals: SignalStore | None = None
    """Set by tests and embedders; None means the process-wide store for the active backend."""
    _policy: BacklogPolicy | None = field(default=None, repr=False)
    _catalog: dict[str, CatalogOwner] | None = field(default=None, repr=False)
    rejections: RejectionTally | None = None
    """Where rejected signals are counted for ``/metrics`` (the runtime's); None counts nowhere."""
    on_behalf_of: str | None = None
    """The person a delegate account acts for (``X-Acting-User``, the web's trusted proxy): written
    on every event as ``on_behalf_of`` beside ``actor`` (the account)."""

    def policy(self) -> BacklogPolicy:
        """Read on first use per context, so an edited policy applies to the next call."""
        if self._policy is None:
            self._policy = load_policy(self.policy_path or self.settings.policy_path)
        return self._policy

    def catalog(self) -> dict[str, CatalogOwner]:
        """Owners from ``ownership.catalog`` (Backstage files under ``REPO_ROOT``); empty without one.
        Read on first use per context, like the policy."""
        if self._catalog is None:
            patterns = self.policy().ownership.catalog
            self._catalog = load_catalog(patterns, self.settings.root) if patterns else {}
        return self._catalog

    def owner_for(self, service: str) -> tuple[str, str]:
        """A new item's owner and why: ``ownership.overrides``, then the catalog, then ``default_owner``."""
        return self.policy().ownership.owner_for(service, self.catalog())

    def shown(self, path: Path) -> str:
        """A file as tool results name it: relative to ``REPO_ROOT``, else to the folder variable
        that put it elsewhere (``$BACKLOG_REPORTS_DIR/platform/…``), else its name — never the
        server's absolute path (issue 23)."""
        resolved = path.resolve()
        bases = ((self.settings.root, ""), (self.settings.reports_dir, "$BACKLOG_REPORTS_DIR/"),
                 (self.settings.state_dir, "$BACKLOG_STATE_DIR/"))
        for base, label in bases:
            try:
                return f"{label}{resolved.relative_to(base.resolve())}"
            except ValueError:
                continue
        return path.name
