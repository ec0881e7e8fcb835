"""Parameter types that take JSON values as they are, never a look-alike (issue 23).

Pydantic's lax mode reads ``false`` as ``0``, ``"off"`` as ``False`` and ``0`` as 1970-01-01: a
careless client's ``{"retention_days": false}`` then deleted every closed item, and
``{"dry_run": "no"}`` wrote instead of previewing. Every action's params, the REST bodies built
from them and the signal models use these types instead, so through every surface:

- a boolean is a JSON boolean (``Flag``): not ``1``, ``"true"`` or ``"off"``;
- an integer is a JSON integer (``Strict()`` + ``JSON_INTEGER``): not ``true``, ``1.5`` or ``"1"``;
  a number (``Number``) is a JSON number, not a boolean or a string. ``180.0`` is the integer 180, as JSON Schema
  defines it (a number with a zero fractional part) and as JavaScript writes it anyway: the
  OpenAPI document promises it, so schema-driven clients may send it;
- a date is text ``YYYY-MM-DD`` (``IsoDate``) and a moment is ISO 8601 text with its offset
  (``Moment``): not a Unix timestamp, as a number or as text.

Query strings carry only text: ``api.query`` turns exactly ``true``/``false`` and decimal digits
into these JSON values first, and leaves anything else to be refused here.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, StrictBool, StrictFloat
from pydantic_core import PydanticCustomError

DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MOMENT_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_text(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and DATE_TEXT.match(value):
        return value
    raise PydanticCustomError("date_type", "Input should be a date as text, YYYY-MM-DD")


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("int_from_float", "Input should be a valid integer, got a number with a "
                                                        "fractional part")
        return int(value)
    return value


def _moment_text(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and MOMENT_TEXT.match(value)):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date and time with an offset, "
                                               "e.g. 2026-11-26T12:00:00Z")


Flag = StrictBool
# A bounded integer keeps its bounds inside, before ``JSON_INTEGER`` (so the JSON Schema states them):
#     Annotated[int, Strict(), Field(ge=1, le=500), JSON_INTEGER]
JSON_INTEGER = BeforeValidator(_json_integer)
Number = StrictFloat  # a JSON integer is a number too; a boolean or text is not
IsoDate = Annotated[date, BeforeValidator(_date_text)]
Moment = Annotated[AwareDatetime, BeforeValidator(_moment_text)]
