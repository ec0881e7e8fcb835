"""Decoding the lines of a JSONL file: one JSON object a line, optionally without its last member.

Kept beside ``jsonl_log`` (which reads, repairs and appends whole files): these are the pure
byte-level helpers it decodes with.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import orjson


@functools.cache
def skip_pattern(skip_last: bytes) -> re.Pattern[bytes]:
    return re.compile(re.escape(skip_last) + rb"[^\n]*\n")


def parse_line(raw: bytes, skip_last: bytes | None = None) -> dict[str, Any] | None:
    """A JSON object, or None. With ``skip_last``, the line is first decoded without its last
    member when that member starts with ``skip_last``: JSON strings cannot hold an unescaped
    quote, so the cut falls on structure, and ``prefix + "}"`` decodes only when the cut is at
    the top level — a cut inside a nested object leaves a brace open and is refused, and then
    the whole line is decoded (its damage, if any, is reported as usual)."""
    if not raw:
        return None
    if skip_last is not None:
        at = raw.rfind(skip_last)
        if at > 0:
            try:
                value = orjson.loads(raw[:at] + b"}")
            except orjson.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                return value
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
