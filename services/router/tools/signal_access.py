"""What the signal tools share: the context's signal store and risk policy, and ``as_of``.

``as_of`` lets a run describe a past moment (backfilling snapshots, rebuilding a digest);
without it the moment is the context's clock, the one clock every tool reads.
"""

from __future__ import annotations

from datetime import datetime

from services.router.clock import ensure_utc
from services.router.errors import Conflict
from services.router.signals.risk_policy import RiskPolicy, load_risk_policy
from services.router.signals.store import SignalStore
from services.router.tools.context import ToolContext

__all__ = ["moment", "risk_policy_for", "signal_store_for", "store_and_policy"]


def signal_store_for(ctx: ToolContext) -> SignalStore:
    """The runtime's signal store (opened once, beside the backlog store, and passed in)."""
    if ctx.signals is None:
        raise RuntimeError("this tool context carries no signal store; build it with runtime.build_runtime")
    return ctx.signals


def risk_policy_for(ctx: ToolContext) -> RiskPolicy:
    return load_risk_policy(ctx.settings.risk_policy_path)


def store_and_policy(ctx: ToolContext) -> tuple[SignalStore, RiskPolicy]:
    return signal_store_for(ctx), risk_policy_for(ctx)


def moment(ctx: ToolContext, as_of: datetime | None, *, field: str = "as_of") -> datetime:
    """The moment a run describes; a future one is refused (it would invent history).

    A 409, not a 422: the value is well formed, and whether it lies ahead depends on the clock
    (the OpenAPI document can state the shape, not the time of the request)."""
    now = ctx.clock.now()
    if as_of is None:
        return now
    at = ensure_utc(as_of)
    if at > now:
        raise Conflict(f"{field} {at.isoformat()} is in the future", field=field)
    return at
