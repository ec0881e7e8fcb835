"""``backlog_tool.alerts`` (what fires now) and ``backlog_tool.notify_alerts`` (the job)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.alerts.receivers import configured_receivers
from services.router.alerts.run import run_notifier
from services.router.alerts.service import current_alerts
from services.router.alerts.state import AlertStateFile
from services.router.domain.models import Slug
from services.router.domain.strict import Flag
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry


class AlertsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: Slug | None = None


class NotifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    envs: list[Slug] | None = Field(default=None, max_length=50, description="default: the policy's alerts.envs")
    dry_run: Flag = False


def alerts(ctx: ToolContext, p: AlertsParams) -> dict[str, Any]:
    dashboard = ctx.store.dashboard(p.env)
    return {"env": p.env, "alerts": current_alerts(ctx.store, ctx.policy().alerts, env=p.env, dashboard=dashboard)}


def notify_alerts(ctx: ToolContext, p: NotifyParams) -> dict[str, Any]:
    envs = p.envs or ctx.policy().alerts.envs
    state = AlertStateFile(ctx.settings.state_dir / "alerts.json")
    return run_notifier(ctx.store, ctx.policy().alerts, ctx.clock, envs=envs,
                        receivers=configured_receivers(ctx.settings), state_file=state, dry_run=p.dry_run)


def register(registry: ToolRegistry) -> None:
    registry.action("backlog_tool", "alerts", area="backlog", level="read", params=AlertsParams,
                    summary="Alert rules that fire now, per env")(alerts)
    registry.action("backlog_tool", "notify_alerts", area="backlog", level="admin", params=NotifyParams,
                    summary="Send alert notifications on state change and per-owner reminders")(notify_alerts)
