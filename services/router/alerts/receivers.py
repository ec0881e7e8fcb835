"""Where notifications go: a generic JSON webhook and a Slack-compatible incoming webhook.

URLs come from the environment (``BACKLOG_ALERT_WEBHOOK_URL``, ``BACKLOG_ALERT_SLACK_WEBHOOK_URL``),
read and checked by ``Settings`` like every variable, and are never logged: webhook URLs embed
their secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from services.router.settings import Settings

WEBHOOK_ENV = "BACKLOG_ALERT_WEBHOOK_URL"
SLACK_ENV = "BACKLOG_ALERT_SLACK_WEBHOOK_URL"
EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


@dataclass(frozen=True)
class Receiver:
    name: str
    url: str
    style: str  # "json" | "slack"

    def body(self, note: dict[str, Any]) -> dict[str, Any]:
        if self.style == "slack":
            head = f"{EMOJI.get(note.get('severity', ''), '')} *{note['kind'].upper()}*"
            return {"text": f"{head} {note['message']}"}
        return note

    def send(self, note: dict[str, Any], *, timeout: float = 5.0) -> None:
        """Raise on anything but a 2xx, so the notification stays in the outbox."""
        response = httpx.post(self.url, json=self.body(note), timeout=timeout,
                              headers={"Idempotency-Key": note["id"]})
        response.raise_for_status()


def configured_receivers(settings: Settings) -> list[Receiver]:
    out = []
    if settings.backlog_alert_webhook_url is not None:
        out.append(Receiver("webhook", settings.backlog_alert_webhook_url.get_secret_value().strip(), "json"))
    if settings.backlog_alert_slack_webhook_url is not None:
        out.append(Receiver("slack", settings.backlog_alert_slack_webhook_url.get_secret_value().strip(), "slack"))
    return out
