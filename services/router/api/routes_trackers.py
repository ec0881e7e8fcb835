"""``POST /v1/trackers/{name}/webhook``: a tracker tells us an issue changed.

Authenticated by the tracker's own shared secret, not an API key (``access/auth.py`` lists the route
in ``TRACKER_SECRET_ROUTES``; ``trackers/webhooks.py`` checks the signature). It answers 202 once
the pull of that issue is in the outbox, and the router runs it in the background
(``trackers/kicker.py``); the body is never trusted for the issue's state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.router.access.auth import current_runtime
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.runtime import Runtime
from services.router.stores.tracker_link_factory import link_store_for
from services.router.trackers.config import trackers_config
from services.router.trackers.kicker import PullKicker
from services.router.trackers.service import engine_for
from services.router.trackers.webhooks import receive

WEBHOOK_PATH = "/v1/trackers/{name}/webhook"
TrackerPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$", description="the tracker's name")]


class WebhookAnswer(BaseModel):
    scheduled: bool = Field(description="a pull of the issue is in the outbox")
    tracker: str
    key: str | None = None
    item_id: str | None = None
    reason: str | None = Field(default=None, description="why nothing was scheduled")


def kicker(runtime: Runtime) -> PullKicker:
    """One per runtime: runs the scheduled pulls of a tracker in the background."""
    found = runtime.extras.get("tracker_kicker")
    if found is None:
        def run(tracker: str) -> object:
            engine = engine_for(runtime.store, runtime.settings, runtime.clock,
                                runtime.extras.get("tracker_adapter_for"))
            return engine.pull_scheduled(tracker) if engine is not None else None

        found = runtime.extras.setdefault("tracker_kicker", PullKicker(run))
    return found  # type: ignore[no-any-return]


def handle(runtime: Runtime, name: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    config = trackers_config(runtime.settings)
    links = link_store_for(runtime.store, runtime.settings) if config is not None and name in config.trackers \
        else None
    return receive(links, config, name, headers, body, runtime.clock)


async def webhook(name: TrackerPath, request: Request) -> Response:
    runtime = current_runtime(request)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    result = await run_in_threadpool(handle, runtime, name, headers, body)
    if result["scheduled"]:
        kicker(runtime).kick(name)
    return OrjsonResponse(result, status_code=202)


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    app.add_api_route(
        WEBHOOK_PATH, webhook, methods=["POST"], response_model=WebhookAnswer, status_code=202, tags=["trackers"],
        summary="A tracker's webhook (GitHub, GitLab, Jira): schedules a pull of the issue it names",
        description="Authenticated by the tracker's webhook secret (`webhook_secret_env` in config/trackers.yml): "
                    "GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`, Jira `X-Hub-Signature`. Not an API key.",
        responses={**responses, **error_docs(401, 422, 500, 503)},
    )
