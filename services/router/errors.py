"""The one exception tree of Backlog Bridge.

Every layer raises these; only ``api/errors.py`` (HTTP statuses, for the API and the web pages
alike) and ``cli/app.py`` (``EXIT_CODES``) translate them, so a status code or an exit code is
decided in exactly one place::

    BacklogError
    ├── ValidationFailed      bad input: names the field            → 422
    ├── NotFound              unknown item                          → 404
    ├── Conflict              refused transition, missing digest    → 409
    │   ├── TransitionRefused
    │   └── DigestMissing
    ├── PolicyInvalid         a config file that does not validate  → 500 (operator error)
    │   └── SettingsInvalid   a bad environment variable (exit code 6)
    ├── AuthError             missing/unknown key                   → 401
    ├── Forbidden             known key without the entitlement     → 403
    ├── RateLimited           too many failed sign-ins              → 429 (Retry-After)
    └── StoreUnavailable      backend cannot be reached             → 503
"""

from __future__ import annotations

from typing import Any


class BacklogError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error body shared by the API and `--json` CLI output."""
        return {"error": self.message, **self.details}


class ValidationFailed(BacklogError):
    """Input that breaks a documented limit; ``field`` names what was wrong."""

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        if field is not None:
            details["field"] = field
        super().__init__(message, **details)
        self.field = field


class NotFound(BacklogError):
    """An id that names no item."""


class Conflict(BacklogError):
    """A well-formed request the current state refuses."""


class TransitionRefused(Conflict):
    """A status move the transition table does not allow."""


class DigestMissing(Conflict):
    """Generation found no digest to read (the runbook's error text)."""


class PolicyInvalid(BacklogError):
    """A configuration file that does not validate: names file, key and expectation."""


class AuthError(BacklogError):
    """Missing or unknown API key (the same message for both, on purpose)."""


class Forbidden(BacklogError):
    """A known identity without the entitlement an action declares."""


class RateLimited(BacklogError):
    """Too many attempts from one client; ``retry_after_seconds`` says when to try again."""

    def __init__(self, message: str, *, retry_after_seconds: int = 60, **details: Any) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds, **details)
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailable(BacklogError):
    """The storage backend cannot take the request right now; safe to retry."""


class SettingsInvalid(PolicyInvalid):
    """An environment variable whose value cannot be used: names it, the problem and what is accepted.

    A configuration error like a bad policy file, so the same exit code (6) and HTTP status."""
