"""The ``backlog`` command: thin Typer commands over the tools."""

from __future__ import annotations

from services.router.cli import items  # noqa: F401  (registers commands)
from services.router.cli.app import app, main

__all__ = ["app", "main"]
