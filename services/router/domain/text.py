"""How numbers read wherever people see them: item titles and descriptions, digest reports."""

from __future__ import annotations


def signed(value: float | None, *, missing: str = "-") -> str:
    """A change with its sign (``+12``, ``-3.5``, ``+0``); ``missing`` when it is not known."""
    return missing if value is None else f"{value:+g}"
