"""Where notifications go: a generic JSON webhook and a Slack-compatible incoming webhook.

URLs come from the environment (``BACKLOG_ALERT_WEBHOOK_URL``, ``BACKLOG_ALERT_SLACK_WEBHOOK_URL``)
and are never logged: webhook URLs embed their secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

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


def configured_receivers(environ: Mapping[str, str] | None = None) -> list[Receiver]:
    env = os.environ if environ is None else environ
    out = []
    if env.get(WEBHOOK_ENV):
        out.append(Receiver("webhook", env[WEBHOOK_ENV], "json"))
    if env.get(SLACK_ENV):
        out.append(Receiver("slack", env[SLACK_ENV], "slack"))
    return out
