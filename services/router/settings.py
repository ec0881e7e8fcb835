"""Process settings from the environment, built once and passed down (never read at import).

Paths resolve against ``REPO_ROOT`` when set, else the current directory; each has its own
override variable (listed in the README).

Every variable the product reads is a field here, so a bad value is caught in one place, before
anything runs: ``load_settings()`` turns pydantic's report into one ``SettingsInvalid`` line per
process that names the variable, what is wrong with its value and what is accepted (each field's
``description``), and every command prints it and exits 6 — never a traceback. Values that may
hold a secret (DSNs, webhook URLs) are never repeated in that line. Empty variables count as
unset (``BACKLOG_NOW=`` does not pin the clock). Backend names and log levels are
case-insensitive (``BACKLOG_BACKEND=Postgres`` is ``postgres``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.router.errors import SettingsInvalid

Backend = Literal["auto", "postgres", "jsonl", "memory"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SHOWN_VALUE_CHARS = 60
# Short words for pydantic's error types; others keep pydantic's own message.
PROBLEMS = {
    "literal_error": "not one of the accepted values",
    "float_parsing": "not a number",
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "finite_number": "not a finite number",
    "greater_than": "too small",
    "greater_than_equal": "too small",
    "less_than": "too large",
    "less_than_equal": "too large",
}
PG_SCHEMES = ("postgresql://", "postgres://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False, env_ignore_empty=True)

    repo_root: Path | None = Field(default=None, validation_alias="REPO_ROOT", description="a directory path")
    backlog_backend: Backend = Field(
        default="auto", validation_alias="BACKLOG_BACKEND",
        description="auto, postgres, jsonl or memory (any letter case)",
    )
    backlog_jsonl_dir: Path | None = Field(default=None, validation_alias="BACKLOG_JSONL_DIR",
                                           description="a directory path")
    backlog_policy_path: Path | None = Field(default=None, validation_alias="BACKLOG_POLICY_PATH",
                                             description="a file path")
    backlog_reports_dir: Path | None = Field(default=None, validation_alias="BACKLOG_REPORTS_DIR",
                                             description="a directory path")
    backlog_state_dir: Path | None = Field(default=None, validation_alias="BACKLOG_STATE_DIR",
                                           description="a directory path")
    backlog_signals_dir: Path | None = Field(default=None, validation_alias="BACKLOG_SIGNALS_DIR",
                                             description="a directory path")
    backlog_risk_dir: Path | None = Field(default=None, validation_alias="BACKLOG_RISK_DIR",
                                          description="a directory path")
    backlog_risk_policy_path: Path | None = Field(default=None, validation_alias="BACKLOG_RISK_POLICY_PATH",
                                                  description="a file path")
    backlog_rbac_path: Path | None = Field(default=None, validation_alias="BACKLOG_RBAC_PATH",
                                           description="a file path")
    backlog_task_registry: Path | None = Field(default=None, validation_alias="BACKLOG_TASK_REGISTRY",
                                               description="a file path")
    backlog_postgres_dsn: SecretStr | None = Field(
        default=None, validation_alias="BACKLOG_POSTGRES_DSN",
        description="a Postgres DSN, postgresql://user:pass@host:5432/db or 'host=… dbname=…'",
    )
    postgres_dsn: SecretStr | None = Field(
        default=None, validation_alias="POSTGRES_DSN",
        description="a Postgres DSN, postgresql://user:pass@host:5432/db or 'host=… dbname=…'",
    )
    backlog_pg_retry_seconds: float = Field(
        default=300.0, ge=0, allow_inf_nan=False, validation_alias="BACKLOG_PG_RETRY_SECONDS",
        description="seconds, a number >= 0 (default 300)",
    )
    backlog_pg_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, allow_inf_nan=False, validation_alias="BACKLOG_PG_CONNECT_TIMEOUT_SECONDS",
        description="seconds, a number > 0 (default 3)",
    )
    backlog_now: datetime | None = Field(
        default=None, validation_alias="BACKLOG_NOW",
        description="an ISO 8601 timestamp with an offset, e.g. 2026-11-23T06:20:00Z",
    )
    backlog_log_level: LogLevel | None = Field(
        default=None, validation_alias="BACKLOG_LOG_LEVEL",
        description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any letter case)",
    )
    backlog_port: int = Field(default=8000, ge=1, le=65535, validation_alias="BACKLOG_PORT",
                              description="a TCP port, 1-65535 (default 8000)")
    # ``backlog serve``'s connection limits (``api/connections.py``).
    backlog_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, allow_inf_nan=False, validation_alias="BACKLOG_HEADER_TIMEOUT_SECONDS",
        description="seconds, a number > 0 and <= 3600 (default 10)",
    )
    backlog_max_connections: int = Field(
        default=1000, ge=1, le=1_000_000, validation_alias="BACKLOG_MAX_CONNECTIONS",
        description="a whole number, 1-1000000 (default 1000)",
    )
    backlog_alert_webhook_url: SecretStr | None = Field(
        default=None, validation_alias="BACKLOG_ALERT_WEBHOOK_URL", description="an http:// or https:// URL",
    )
    backlog_alert_slack_webhook_url: SecretStr | None = Field(
        default=None, validation_alias="BACKLOG_ALERT_SLACK_WEBHOOK_URL", description="an http:// or https:// URL",
    )

    @field_validator("backlog_backend", "backlog_log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        return text.upper() if text.lower() in ("debug", "info", "warning", "error", "critical") else text.lower()

    @field_validator("backlog_now", mode="before")
    @classmethod
    def _iso_timestamp(cls, value: Any) -> Any:
        """ISO 8601 text only (pydantic alone would also take ``1700000000`` as a time), with an offset."""
        if not isinstance(value, str):
            return value
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not an ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError("has no UTC offset (add Z or +00:00)")
        return parsed

    @field_validator("backlog_postgres_dsn", "postgres_dsn")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        problem = dsn_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("backlog_alert_webhook_url", "backlog_alert_slack_webhook_url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value.get_secret_value().strip())
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        return value

    @model_validator(mode="after")
    def _postgres_needs_a_dsn(self) -> Settings:
        if self.backlog_backend == "postgres" and not self.postgres_dsn_value:
            raise ValueError("BACKLOG_BACKEND=postgres needs BACKLOG_POSTGRES_DSN (or POSTGRES_DSN)")
        return self

    @property
    def root(self) -> Path:
        return self.repo_root if self.repo_root is not None else Path(os.getcwd())

    @property
    def jsonl_dir(self) -> Path:
        return self.backlog_jsonl_dir or self.root / "ops" / "backlog"

    @property
    def policy_path(self) -> Path:
        return self.backlog_policy_path or self.root / "config" / "backlog_policy.yml"

    @property
    def reports_dir(self) -> Path:
        return self.backlog_reports_dir or self.root / "ops" / "reports"

    @property
    def state_dir(self) -> Path:
        """Small operational state (alert notifier, scheduler runs): ``ops/state``."""
        return self.backlog_state_dir or self.root / "ops" / "state"

    @property
    def signals_dir(self) -> Path:
        """Signals beside the backlog's folder, so relocating ``BACKLOG_JSONL_DIR`` moves them too."""
        return self.backlog_signals_dir or self.jsonl_dir.parent / "signals"

    @property
    def risk_dir(self) -> Path:
        """Risk snapshots beside the backlog's folder (same reason as ``signals_dir``)."""
        return self.backlog_risk_dir or self.jsonl_dir.parent / "risk"

    @property
    def risk_policy_path(self) -> Path:
        return self.backlog_risk_policy_path or self.config_dir / "risk_policy.yml"

    @property
    def rbac_path(self) -> Path:
        """``$BACKLOG_RBAC_PATH``, else ``config/rbac.yml``."""
        return self.backlog_rbac_path or self.config_dir / "rbac.yml"

    @property
    def task_registry_path(self) -> Path:
        """``$BACKLOG_TASK_REGISTRY``, else ``ops/task_registry.yml`` under the repo root."""
        return self.backlog_task_registry or self.root / "ops" / "task_registry.yml"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def postgres_dsn_value(self) -> str | None:
        """``BACKLOG_POSTGRES_DSN`` first, then ``POSTGRES_DSN`` (RUNBOOK §2)."""
        secret = self.backlog_postgres_dsn or self.postgres_dsn
        return secret.get_secret_value() if secret else None

    def log_level(self, default: str) -> str:
        """``BACKLOG_LOG_LEVEL``, else the command's own default (WARNING for the CLI, INFO for servers)."""
        return self.backlog_log_level or default


def dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` is not a Postgres DSN (libpq's parser says), or None; never quotes the password."""
    from psycopg.conninfo import conninfo_to_dict

    from services.router.dsn import describe_error

    try:
        conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; anything else is as unusable
        return f"not a valid Postgres DSN ({describe_error(exc, dsn)})"
    if "://" in dsn and not dsn.lower().startswith(PG_SCHEMES):
        return "not a valid Postgres DSN (a URL DSN starts with postgresql:// or postgres://)"
    return None


SECRET_VARIABLES = frozenset({"BACKLOG_POSTGRES_DSN", "POSTGRES_DSN", "BACKLOG_ALERT_WEBHOOK_URL",
                              "BACKLOG_ALERT_SLACK_WEBHOOK_URL"})


def describe_settings_error(exc: ValidationError) -> str:
    """pydantic's report as one line: ``VAR='value': problem; accepted: …`` per bad variable."""
    by_alias = {str(f.validation_alias): f for f in Settings.model_fields.values() if f.validation_alias}
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        variable = loc[0] if loc else ""
        problem = PROBLEMS.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        field = by_alias.get(variable)
        if field is None:  # a check across variables (postgres without a DSN): its message says it all
            parts.append(problem)
            continue
        value = err.get("input")
        if variable in SECRET_VARIABLES:
            shown = "(value not shown: it may hold a secret)"
        else:
            text = str(value)
            shown = repr(text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…")
        accepted = f"; accepted: {field.description}" if field.description else ""
        parts.append(f"{variable}={shown}: {problem}{accepted}")
    return " | ".join(parts)


def load_settings() -> Settings:
    """The environment as ``Settings``, or ``SettingsInvalid`` naming each bad variable (exit code 6)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsInvalid(describe_settings_error(exc)) from None
