"""What an action runs with: the store, settings, the clock and who is acting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from services.router.clock import Clock
from services.router.policy import BacklogPolicy, load_policy
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
    rejections: RejectionTally | None = None
    """Where rejected signals are counted for ``/metrics`` (the runtime's); None counts nowhere."""

    def policy(self) -> BacklogPolicy:
        """Read on first use per context, so an edited policy applies to the next call."""
        if self._policy is None:
            self._policy = load_policy(self.policy_path or self.settings.policy_path)
        return self._policy

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
