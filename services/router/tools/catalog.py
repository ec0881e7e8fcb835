"""Every tool the router serves, registered into one registry."""

from __future__ import annotations

from services.router.tools import backlog_alerts, backlog_tool
from services.router.tools.registry import ToolRegistry


def build_registry() -> ToolRegistry:
    registry = ToolRegistry()
    backlog_tool.register(registry)
    backlog_alerts.register(registry)
    return registry
