"""``tracker_tool``: tracker sync (``sync``, admin), its state (``status``, read) and the links
people set by hand (``link``, ``unlink``, admin).

The logic is ``services.router.trackers.service``; parameters are validated strictly
(``domain.strict``: a boolean is a JSON boolean), so a careless call cannot turn a dry run into a
real one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.domain.models import ItemId
from services.router.domain.strict import Flag
from services.router.tools.context import ToolContext
from services.router.tools.registry import ToolRegistry
from services.router.trackers import service

TOOL = "tracker_tool"
AREA = "tracker"
TrackerName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$")]
Strict = ConfigDict(extra="forbid")


class SyncParams(BaseModel):
    model_config = Strict
    tracker: TrackerName | None = Field(default=None, description="one tracker; default: every configured one")
    dry_run: Flag = Field(default=False, description="say what would be created, updated and pulled; send nothing")


class StatusParams(BaseModel):
    model_config = Strict
    tracker: TrackerName | None = None


class LinkParams(BaseModel):
    model_config = Strict
    id: ItemId
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$")]
    tracker: TrackerName | None = Field(default=None, description="default: the tracker whose issue URL it is")


class UnlinkParams(BaseModel):
    model_config = Strict
    id: ItemId
    recreate: Flag = Field(default=False, description="let the next sync create a new issue for the item")


def sync(ctx: ToolContext, p: SyncParams) -> dict[str, Any]:
    return service.sync(ctx.store, ctx.settings, ctx.clock, tracker=p.tracker, dry_run=p.dry_run)


def status(ctx: ToolContext, p: StatusParams) -> dict[str, Any]:
    return service.status(ctx.store, ctx.settings, ctx.clock, tracker=p.tracker)


def link(ctx: ToolContext, p: LinkParams) -> dict[str, Any]:
    return service.link(ctx.store, ctx.settings, ctx.clock, item_id=p.id, url=p.url, tracker=p.tracker)


def unlink(ctx: ToolContext, p: UnlinkParams) -> dict[str, Any]:
    return service.unlink(ctx.store, ctx.settings, ctx.clock, item_id=p.id, recreate=p.recreate)


def register(registry: ToolRegistry) -> None:
    registry.action(TOOL, "sync", area=AREA, level="admin", params=SyncParams,
                    summary="Sync routed items with their trackers (create, update, comment, pull)")(sync)
    registry.action(TOOL, "status", area=AREA, level="read", params=StatusParams,
                    summary="Per tracker: linked, pending, parked with reasons, last success and error")(status)
    registry.action(TOOL, "link", area=AREA, level="admin", params=LinkParams,
                    summary="Link an item to an existing remote issue (adopt it)")(link)
    registry.action(TOOL, "unlink", area=AREA, level="admin", params=UnlinkParams,
                    summary="Stop syncing an item with its remote issue")(unlink)
