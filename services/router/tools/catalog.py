"""Every tool the router serves, registered into one registry."""

from __future__ import annotations

from services.router.tools import (
    architecture_pressure_tool,
    backlog_alerts,
    backlog_generate,
    backlog_insights,
    backlog_lifecycle,
    backlog_tool,
    digest_reports,
    risk_history_tool,
    signals_tool,
    tracker_tool,
)
from services.router.tools.registry import ToolRegistry


def build_registry() -> ToolRegistry:
    registry = ToolRegistry()
    backlog_tool.register(registry)
    backlog_lifecycle.register(registry)
    backlog_alerts.register(registry)
    backlog_generate.register(registry)
    backlog_insights.register(registry)
    risk_history_tool.register(registry)
    architecture_pressure_tool.register(registry)
    signals_tool.register(registry)
    tracker_tool.register(registry)
    digest_reports.register(registry)
    return registry
