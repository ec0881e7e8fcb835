"""What a tracker's answer means for the work that asked: retry later, wait, or give up.

Adapters only translate; the outbox (which owns retries, backoff and parking) only needs to
know which of three things happened, so every adapter failure is one of::

    TrackerError                 base: ``tracker``, ``reason``, ``status`` (HTTP, or None)
    ├── TrackerRetryable         5xx, timeouts, connection errors, an answer that is not JSON
    │   └── TrackerRateLimited   429, GitHub's 403 rate limits; ``retry_after_seconds``
    └── TrackerPermanent         refused for good until someone acts; ``kind`` says why:
                                 auth (401/403, token unset), not_found (404/410: project or
                                 issue gone), rejected (400/422: a bad field), config (a mapped
                                 name the tracker does not know, a refused transition)

These are not ``BacklogError``\\s on purpose: they never reach an HTTP client or the CLI as
they are; the sync engine records them (parked with the reason, or retried) and the surfaces
show that record. Messages never contain a token: they are built from status, URL path and
the tracker's own error text, and :func:`scrub` removes the token should a tracker echo it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

PermanentKind = Literal["auth", "not_found", "rejected", "config"]
MAX_REASON_CHARS = 500
# GitHub: a secondary rate limit without retry-after or a reset means "wait at least a minute".
DEFAULT_RATE_LIMIT_SECONDS = 60.0


class TrackerError(Exception):
    """A tracker request that did not do what was asked; ``reason`` is safe to show and store."""

    def __init__(self, tracker: str, reason: str, *, status: int | None = None) -> None:
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
        super().__init__(f"tracker {tracker}: {reason}")
        self.tracker = tracker
        self.reason = reason
        self.status = status


class TrackerRetryable(TrackerError):
    """Worth trying again later (the outbox decides when)."""


class TrackerRateLimited(TrackerRetryable):
    """The tracker asked us to slow down; do not call it again before ``retry_after_seconds``."""

    def __init__(self, tracker: str, reason: str, *, retry_after_seconds: float, status: int | None = None) -> None:
        super().__init__(tracker, reason, status=status)
        self.retry_after_seconds = retry_after_seconds


class TrackerPermanent(TrackerError):
    """Retrying the same request cannot succeed; park it with the reason and show it."""

    def __init__(self, tracker: str, reason: str, *, kind: PermanentKind, status: int | None = None) -> None:
        super().__init__(tracker, reason, status=status)
        self.kind: PermanentKind = kind


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long a tracker asked us to wait, from the headers trackers actually send.

    ``Retry-After`` (seconds or an HTTP date; RFC 9110) first; then a reset time as epoch
    seconds (GitHub ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0, GitLab
    ``RateLimit-Reset``) or as an ISO timestamp (Jira Cloud ``X-RateLimit-Reset``). None when
    none of them is usable; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = lowered.get("retry-after")
    if raw is not None:
        raw = raw.strip()
        try:
            return _non_negative(float(raw))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return _non_negative((_aware(when) - now).total_seconds())
    reset = lowered.get("x-ratelimit-reset") or lowered.get("ratelimit-reset")
    if reset is not None and lowered.get("x-ratelimit-remaining", "0").strip() == "0":
        reset = reset.strip()
        try:
            return _non_negative(float(reset) - now.timestamp())
        except ValueError:
            pass
        try:
            return _non_negative((_aware(datetime.fromisoformat(reset.replace("Z", "+00:00"))) - now).total_seconds())
        except ValueError:
            return None
    return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _non_negative(seconds: float) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("not a finite number of seconds")
    return max(0.0, seconds)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove secrets from text that may have come from a tracker (an echoed header, say)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
