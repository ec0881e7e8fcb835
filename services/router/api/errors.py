"""The one map from errors to HTTP responses, and the one JSON encoder.

Every layer raises the exception tree of ``services.router.errors``; this module alone turns
an error into a status code and a ``{"error": "...", ...}`` body. Framework errors (request
validation, unknown routes) are translated into the same shape here. Bodies never carry a
stack trace: unexpected exceptions become a bare 500 with the request id, and the traceback
goes to the server log only (see ``middleware.RequestContextMiddleware``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.router.errors import (
    AuthError,
    BacklogError,
    Conflict,
    Forbidden,
    NotFound,
    PolicyInvalid,
    RateLimited,
    StoreUnavailable,
    ValidationFailed,
)

log = logging.getLogger("backlog.api")

DEFAULT_RETRY_AFTER_SECONDS = 5
LOCATIONS = ("body", "query", "path", "header", "cookie")


class RequestTooLarge(BacklogError):
    """A request body over the limit; transport-level, so it lives beside the HTTP map."""


# Most specific first: the first matching class decides.
STATUS_BY_ERROR: tuple[tuple[type[BacklogError], int], ...] = (
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),  # TransitionRefused, DigestMissing: the runbook's text in "error"
    (AuthError, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (RequestTooLarge, 413),
    (StoreUnavailable, 503),
    (PolicyInvalid, 500),  # an operator's config error: the message says which file and key
)


def default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class OrjsonResponse(JSONResponse):
    """JSON via orjson (dates, datetimes, UUIDs natively; pydantic models through ``default``)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=default, option=orjson.OPT_NON_STR_KEYS)


class ErrorBody(BaseModel):
    """Every error response; ``field`` names the bad input for 422s, more keys may follow."""

    model_config = ConfigDict(extra="allow")

    error: str
    field: str | None = None


def status_for(exc: BacklogError) -> int:
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(exc, kind)), 500)


def error_response(exc: BacklogError) -> Response:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, StoreUnavailable):
        retry = exc.details.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS)
        headers["Retry-After"] = str(max(1, int(retry)))
    elif isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = 'Bearer, ApiKey header="X-API-Key"'
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, exc.retry_after_seconds))
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return OrjsonResponse(exc.to_dict(), status_code=status, headers=headers)


def internal_error_response(request_id: str) -> Response:
    return OrjsonResponse({"error": "internal error", "request_id": request_id}, status_code=500)


def request_validation_failed(exc: RequestValidationError) -> ValidationFailed:
    """FastAPI's report as one error naming the first bad field, like the registry's."""
    errors: list[dict[str, str]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in LOCATIONS else loc
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            errors.append({"field": "body", "in": "body", "message": "invalid JSON", "type": kind})
            continue
        message = "unknown field" if kind == "extra_forbidden" else str(err.get("msg", "invalid"))
        errors.append({"field": ".".join(path) or where, "in": where, "message": message, "type": kind})
    if not errors:
        return ValidationFailed("invalid request", field="body")
    first = errors[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", field=first["field"], errors=errors)


async def on_backlog_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BacklogError)
    return error_response(exc)


async def on_request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request_validation_failed(exc))


async def on_http_exception(_: Request, exc: Exception) -> Response:
    """Unknown routes (404), wrong methods (405) and the like, in the same body shape; an unparseable
    body is bad input like any other (422 naming ``body``)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8)
        return error_response(ValidationFailed("body: could not be parsed as JSON", field="body"))
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return OrjsonResponse({"error": detail.lower()}, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BacklogError, on_backlog_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses, all with the shared error body."""
    described = {
        401: "Missing or unknown API key (the same body for both)",
        403: "The key's account lacks the entitlement (named in the body)",
        404: "Unknown item, tool or action",
        409: "Refused transition or missing digest (the runbook's text in `error`)",
        413: "Request body over 1 MiB",
        422: "Invalid input; `field` names it",
        429: "Too many failed attempts from this address; retry after `Retry-After` seconds",
        500: "Internal or configuration error (no stack trace)",
        503: "Store unavailable; retry after `Retry-After` seconds",
    }
    return {s: {"model": ErrorBody, "description": described[s]} for s in statuses}
