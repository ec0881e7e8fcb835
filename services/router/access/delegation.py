"""People in the audit trail: which person a service account acts for.

Accounts are services (``oncall``, ``admin``); an event names the account as its ``actor``. An
account marked ``delegate: true`` in ``config/rbac.yml`` — a chat bot, an internal portal, the
web dashboard behind a sign-in proxy — may say which person it acts for, and every event it
writes then records that person as ``on_behalf_of``:

* API calls send ``X-Acting-User: <email or slug>``. From an account without ``delegate: true``
  the header is refused (403: it would otherwise be silently dropped from the record a client
  believes it wrote); a value that is not an email address or a slug, or is over 128
  characters, is a 422 naming the header.
* Web pages behind an auth proxy (oauth2-proxy's convention, ``web:`` in ``config/rbac.yml``):
  a request from an address in ``web.trusted_proxies`` carrying ``web.trusted_user_header``
  (``X-Forwarded-Email``) is signed in as ``web.proxy_account`` on behalf of that person
  (``web.proxy_auth``). The same header from any other address is ignored and logged: anyone
  can send a header, only the proxy's address makes it true.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork
from starlette.datastructures import Headers

from services.router.errors import Forbidden, ValidationFailed

ACTING_USER_HEADER = "X-Acting-User"
MAX_PERSON = 128
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
                    r"[A-Za-z0-9])?)+$")
HEADER_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"


def person_problem(value: str) -> str | None:
    """Why ``value`` cannot name a person (an email address or a slug, at most 128 characters), or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_PERSON:
        return f"is {len(value)} characters; at most {MAX_PERSON}"
    if not (_EMAIL.match(value) or _SLUG.match(value)):
        return "is not an email address or a slug ([a-z0-9][a-z0-9._-]*)"
    return None


def acting_user(headers: Headers, *, account: str, delegate: bool) -> str | None:
    """The person an API call acts for (``X-Acting-User``), checked; None when not sent."""
    values = headers.getlist(ACTING_USER_HEADER.lower())
    if not values:
        return None
    if not delegate:
        raise Forbidden(f"account {account!r} may not act for a person: {ACTING_USER_HEADER} needs delegate: true "
                        "for the account in config/rbac.yml", field=ACTING_USER_HEADER, account=account)
    value = values[0].strip()
    problem = "is sent more than once" if len(values) > 1 else person_problem(value)
    if problem is not None:
        raise ValidationFailed(f"{ACTING_USER_HEADER} {problem}", field=ACTING_USER_HEADER)
    return value


class WebProxy(BaseModel):
    """``web:`` in ``config/rbac.yml``: the web dashboard behind an authenticating proxy."""

    model_config = ConfigDict(extra="forbid")

    trusted_user_header: Annotated[str, Field(pattern=HEADER_NAME)] = "X-Forwarded-Email"
    trusted_proxies: list[IPvAnyNetwork] = Field(min_length=1, max_length=100)
    proxy_account: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]

    def trusts(self, address: str | None) -> bool:
        """Whether a request's peer address is one of the proxies."""
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)
