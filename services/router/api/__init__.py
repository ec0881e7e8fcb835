"""The router's HTTP API: app factory, API keys and RBAC, routes, the one error→status map.

``create_app`` is the entry point; importing this package reads no settings and opens nothing.
"""

from __future__ import annotations

from services.router.api.app import create_app
from services.router.api.rbac import RbacConfig, load_rbac

__all__ = ["RbacConfig", "create_app", "load_rbac"]
