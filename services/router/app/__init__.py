"""The app factory: the HTTP API and the web dashboard on one ASGI app, above both.

``create_app`` is the entry point; importing this package reads no settings and opens nothing.
"""

from __future__ import annotations

from services.router.app.factory import create_app

__all__ = ["create_app"]
