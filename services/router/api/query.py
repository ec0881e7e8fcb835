"""Query strings as action params: text turned into JSON values by one strict rule (issue 23).

A query string carries only text, while the actions take JSON values strictly
(``domain.strict``). A query model (``QueryForm`` mixed into an action's params model) turns a
boolean field's text into a boolean only when it is exactly ``true`` or ``false``, and an
integer field's text into an integer only when it is decimal digits; anything else (``1``,
``yes``, ``off``, ``1.0``, `` 5``) reaches the strict type unchanged and is refused with a 422
naming the field. The REST routes' query parameters and the web pages' filters both go
through here, so a URL means the same thing on both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError, model_validator

from services.router.domain.queries import ItemQuery
from services.router.tools.registry import validation_error

QUERY_FLAGS = {"true": True, "false": False}
QUERY_INT = re.compile(r"^-?[0-9]{1,18}$")


def json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema admits (``type``, or each ``anyOf`` branch's)."""
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for branch in schema.get("anyOf", ()):
        found |= json_types(branch)
    return found


def from_text(types: set[str], value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if "boolean" in types and value in QUERY_FLAGS:
        return QUERY_FLAGS[value]
    if "integer" in types and QUERY_INT.match(value):
        return int(value)
    return value


class QueryForm(BaseModel):
    """Mix in first (``class ItemListQuery(QueryForm, ItemQuery)``): the fields stay the action's."""

    _field_types: ClassVar[dict[str, set[str]] | None] = None

    @classmethod
    def field_types(cls) -> dict[str, set[str]]:
        if cls.__dict__.get("_field_types") is None:
            properties = cls.model_json_schema().get("properties", {})
            cls._field_types = {name: json_types(prop) for name, prop in properties.items()}
        return cls._field_types  # type: ignore[return-value]

    @model_validator(mode="before")
    @classmethod
    def _from_query_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        types = cls.field_types()
        return {name: from_text(types.get(name, set()), value) for name, value in data.items()}


class ItemListQuery(QueryForm, ItemQuery):
    """``backlog_tool.list``'s params as a query string (``GET /v1/backlog/items``, the web's ``/items``)."""


def query_params(model: type[QueryForm], query: Mapping[str, str]) -> dict[str, Any]:
    """``query`` validated by ``model`` as the action's params (the web pages' filters)."""
    try:
        parsed = model.model_validate(dict(query))
    except ValidationError as exc:
        raise validation_error(exc) from None
    return parsed.model_dump(exclude_none=True)
