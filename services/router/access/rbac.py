"""Service accounts and their entitlements, from ``config/rbac.yml`` (DESIGN §9).

The file names each account's entitlements and the *environment variable* that holds its
key — never the key itself, so no secret is ever committed. An account whose variable is
unset is disabled (it cannot authenticate); a variable holding an obvious placeholder or a
short key stops the process at startup instead of silently accepting a guessable key.

Only SHA-256 digests of keys stay in memory: lookups compare digests of equal length with
``hmac.compare_digest`` against every account, so timing reveals neither which account
matched nor how long the keys are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.router.config_file import validate_config
from services.router.errors import PolicyInvalid
from services.router.tools.registry import grants

ENTITLEMENT_PATTERN = r"^tools\.[a-z][a-z0-9_]{0,63}\.(read|write|admin)$"
ACCOUNT_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,127}$"

MIN_KEY_LENGTH = 16
MIN_DISTINCT_CHARS = 8
# Substrings of keys people paste from examples; long enough that a random key never holds one.
PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "example", "yourkey", "yourapikey", "insecure",
                     "notasecret", "secretkey", "password")

Entitlement = Annotated[str, Field(pattern=ENTITLEMENT_PATTERN)]
AccountName = Annotated[str, Field(pattern=ACCOUNT_PATTERN)]


class AccountSpec(BaseModel):
    """One account as written in the file."""

    model_config = ConfigDict(extra="forbid")

    key_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
    entitlements: list[Entitlement] = Field(min_length=1)
    description: str = ""


class RbacFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[AccountName, AccountSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_account_per_variable(self) -> RbacFile:
        seen: dict[str, str] = {}
        for name, spec in self.accounts.items():
            if spec.key_env in seen:
                raise ValueError(f"accounts {seen[spec.key_env]} and {name} share key_env {spec.key_env}")
            seen[spec.key_env] = name
        return self


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    name: str
    entitlements: frozenset[str]
    key_env: str
    description: str = ""

    def allows(self, needed: str) -> bool:
        return grants(self.entitlements, needed)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def check_key(key: str, *, source: str) -> str:
    """Return the usable key or refuse it, naming where it came from but never its value."""
    key = key.strip()
    hint = "use a random key, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if len(key) < MIN_KEY_LENGTH:
        raise PolicyInvalid(f"{source}: API key is shorter than {MIN_KEY_LENGTH} characters; {hint}", key=source)
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in key):
        raise PolicyInvalid(f"{source}: API key must be printable ASCII without spaces; {hint}", key=source)
    folded = "".join(ch for ch in key.lower() if ch.isalnum())
    if any(word in folded for word in PLACEHOLDER_WORDS) or len(set(key)) < MIN_DISTINCT_CHARS:
        raise PolicyInvalid(f"{source}: API key looks like a placeholder; {hint}", key=source)
    return key


class RbacConfig:
    """Declared accounts plus the keys of the enabled ones (as digests)."""

    def __init__(self, accounts: Sequence[ServiceAccount], keys: Mapping[str, str], *, source: str = "rbac") -> None:
        self.accounts: tuple[ServiceAccount, ...] = tuple(accounts)
        self.source = source
        by_name = {a.name: a for a in self.accounts}
        unknown = sorted(set(keys) - set(by_name))
        if unknown:
            raise PolicyInvalid(f"{source}: keys given for undeclared accounts {unknown}", keys=unknown)
        digests: dict[bytes, str] = {}
        for name, raw in keys.items():
            digest = key_digest(check_key(raw, source=by_name[name].key_env))
            if digest in digests:
                raise PolicyInvalid(
                    f"{source}: accounts {digests[digest]} and {name} have the same API key; give each its own",
                    keys=[digests[digest], name],
                )
            digests[digest] = name
        self._entries: tuple[tuple[bytes, ServiceAccount], ...] = tuple(
            (digest, by_name[name]) for digest, name in digests.items()
        )

    @property
    def enabled(self) -> list[ServiceAccount]:
        return [account for _, account in self._entries]

    @property
    def disabled(self) -> list[ServiceAccount]:
        on = {a.name for a in self.enabled}
        return [a for a in self.accounts if a.name not in on]

    def account(self, name: str) -> ServiceAccount | None:
        return next((a for a in self.accounts if a.name == name), None)

    def identify(self, presented: str) -> ServiceAccount | None:
        """The account whose key this is; compares against every key, without early exit."""
        digest = key_digest(presented)
        found: ServiceAccount | None = None
        for known, account in self._entries:
            if hmac.compare_digest(digest, known):
                found = account
        return found

    def with_keys(self, keys: Mapping[str, str]) -> RbacConfig:
        """The same accounts with these keys (tests, and ``backlog serve``'s local admin key)."""
        return RbacConfig(self.accounts, keys, source=self.source)


def read_accounts(path: Path) -> list[ServiceAccount]:
    """Validate the file; errors name the file, the key and what was expected."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyInvalid(f"{path}: RBAC file not found", file=str(path)) from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyInvalid(f"{path}: cannot read RBAC file: {exc}", file=str(path)) from exc
    parsed = validate_config(RbacFile, data if data is not None else {}, path)
    return [
        ServiceAccount(name, frozenset(spec.entitlements), spec.key_env, spec.description)
        for name, spec in parsed.accounts.items()
    ]


def load_rbac(path: Path, *, environ: Mapping[str, str] | None = None) -> RbacConfig:
    """Accounts from ``path`` with keys from the environment; unset or empty variables disable."""
    env = os.environ if environ is None else environ
    accounts = read_accounts(path)
    keys = {a.name: env[a.key_env] for a in accounts if env.get(a.key_env, "").strip()}
    return RbacConfig(accounts, keys, source=str(path))
