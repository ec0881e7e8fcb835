"""Keep Postgres passwords out of logs, exception messages and script output (DESIGN §8).

Standard library only: the migration script imports this before it knows whether psycopg is
installed, and must still never print a password when it reports that it is not.

A DSN may carry its password in three places — the URL's userinfo (``user:pass@``), a
``password=`` query parameter, or a ``password=`` keyword of the ``key=value`` form — and a
driver message may quote any fragment of the DSN, so besides rewriting the DSN we also scrub
every occurrence of the password (raw and percent-decoded) from any text we emit.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
URL_SCHEMES = ("postgresql://", "postgres://")
# password=secret, password='it''s', password = "x" (libpq keyword form, also leaked fragments)
_KEYWORD_PASSWORD = re.compile(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&]+)""",
                               re.IGNORECASE)


def dsn_passwords(dsn: str) -> list[str]:
    """Every spelling of the password a DSN carries (raw and percent-decoded), longest first."""
    found: set[str] = set()
    if dsn.lower().startswith(URL_SCHEMES):
        try:
            parts = urlsplit(dsn)
        except ValueError:
            parts = None
        if parts is not None:
            userinfo = parts.netloc.rpartition("@")[0]
            if ":" in userinfo:
                raw = userinfo.split(":", 1)[1]
                found.update({raw, unquote(raw)})
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key.lower() == "password":
                    found.add(value)
            for match in re.finditer(r"(?i)password=([^&]*)", parts.query):
                found.update({match.group(1), unquote(match.group(1))})
    for match in _KEYWORD_PASSWORD.finditer(dsn):
        value = match.group(2)
        found.add(value)
        if value[:1] in "'\"" and len(value) >= 2:
            found.add(value[1:-1].replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\"))
    return sorted((p for p in found if p), key=len, reverse=True)


def redact_dsn(dsn: str | None) -> str:
    """The DSN with its password replaced by ``***``; safe to log and to show to people."""
    if not dsn:
        return ""
    text = dsn
    if text.lower().startswith(URL_SCHEMES):
        try:
            parts = urlsplit(text)
            userinfo, at, hostinfo = parts.netloc.rpartition("@")
            if at and ":" in userinfo:
                userinfo = f"{userinfo.split(':', 1)[0]}:{MASK}"
            query = parts.query
            if "password" in query.lower():
                pairs = parse_qsl(query, keep_blank_values=True)
                query = urlencode([(k, MASK if k.lower() == "password" else v) for k, v in pairs], safe="*")
            text = urlunsplit((parts.scheme, f"{userinfo}{at}{hostinfo}", parts.path, query, parts.fragment))
        except ValueError:  # not a parsable URL: blank out anything that looks like the password
            return scrub(_KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", dsn), dsn)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)


def scrub(text: str, dsn: str | None) -> str:
    """Remove every spelling of the DSN's password from ``text`` (e.g. a driver's error)."""
    if not dsn:
        return text
    for secret in dsn_passwords(dsn):
        text = text.replace(secret, MASK)
    return text


def describe_error(exc: BaseException, dsn: str | None) -> str:
    """One line for people: the error's first meaningful line, password-free.

    libpq messages span lines (``connection failed: …\\n\\tIs the server running…``); the first
    line carries the reason, the rest is advice. One line, so a log keeps one line per event.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    return scrub(re.sub(r"\s+", " ", message), dsn)
