"""The ``backlog`` command: thin Typer commands over the tools."""

from __future__ import annotations

import services.router.cli.serve  # noqa: F401  (registers `backlog serve`)
from services.router.cli import items  # noqa: F401  (registers commands)
from services.router.cli.app import app, main

__all__ = ["app", "main"]
