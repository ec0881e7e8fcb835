"""The ``backlog`` command: thin Typer commands over the tools."""

from __future__ import annotations

import services.router.cli.generate as _generate  # noqa: F401  (registers `backlog generate`, `backlog policy`)
import services.router.cli.jobs as _jobs  # noqa: F401  (registers `backlog jobs …`, `backlog scheduler`)
import services.router.cli.lifecycle as _lifecycle  # noqa: F401  (registers `backlog accept`, `backlog unaccept`)
import services.router.cli.serve  # noqa: F401  (registers `backlog serve`)
import services.router.cli.signals as _signals  # noqa: F401  (registers `backlog signals`)
import services.router.cli.trackers as _trackers  # noqa: F401  (registers `backlog tracker …`)
from services.router.cli import insights, items  # noqa: F401  (registers commands)
from services.router.cli.app import app, main

__all__ = ["app", "main"]
