"""Never echo or log a configured API key, wherever a careless client put it (issue 23).

A client that sends its key as ``X-Request-ID``, as a parameter name (``{"<key>": 1}``: "unknown
field") or as a tool name would have it echoed in the response and written to the log. Only
SHA-256 digests of the keys are in memory (``rbac``), so a text is checked by trying the pieces
a key could be: the whole text, each whitespace-separated word, the word without the quotes and
punctuation around it, and each run of its dot-separated parts (field paths). Each candidate costs one
digest and a constant-time comparison per account, and only error bodies, request ids and
access-log lines are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

REDACTED = "***"
PUNCTUATION = "'\"`,:;()[]{}<>"
MAX_PARTS = 16

IsKey = Callable[[str], bool]


class KeyRedactor:
    def __init__(self, is_key: IsKey, *, min_length: int = 16, max_length: int = 512) -> None:
        self._is_key = is_key
        self.min_length = min_length
        self.max_length = max_length

    def is_key(self, text: str) -> bool:
        return self.min_length <= len(text) <= self.max_length and self._is_key(text)

    def candidates(self, text: str) -> Iterator[str]:
        yield text
        for word in text.split():
            for piece in (word, word.strip(PUNCTUATION), word.rstrip(PUNCTUATION), word.lstrip(PUNCTUATION)):
                yield piece
                parts = piece.split(".")
                if 1 < len(parts) <= MAX_PARTS:  # a field path: every run of its parts (a key may hold dots)
                    for start in range(len(parts)):
                        for end in range(start + 1, len(parts) + 1):
                            yield ".".join(parts[start:end])

    def scrub(self, text: str) -> str:
        """``text`` with every configured key in it replaced by ``***``."""
        if len(text) < self.min_length:
            return text
        found = {c for c in set(self.candidates(text)) if self.is_key(c)}
        for key in sorted(found, key=len, reverse=True):
            text = text.replace(key, REDACTED)
        return text

    def scrub_json(self, value: Any) -> Any:
        """A JSON value with every string (keys of objects too) scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub_json(v) for k, v in value.items()}
        return value
