"""Process settings from the environment, built once and passed down (never read at import).

Paths resolve against ``REPO_ROOT`` when set, else the current directory; each has its own
override variable (listed in the README).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Backend = Literal["auto", "postgres", "jsonl", "memory"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    repo_root: Path | None = Field(default=None, validation_alias="REPO_ROOT")
    backlog_backend: Backend = Field(default="auto", validation_alias="BACKLOG_BACKEND")
    backlog_jsonl_dir: Path | None = Field(default=None, validation_alias="BACKLOG_JSONL_DIR")
    backlog_policy_path: Path | None = Field(default=None, validation_alias="BACKLOG_POLICY_PATH")
    backlog_reports_dir: Path | None = Field(default=None, validation_alias="BACKLOG_REPORTS_DIR")
    backlog_state_dir: Path | None = Field(default=None, validation_alias="BACKLOG_STATE_DIR")
    backlog_signals_dir: Path | None = Field(default=None, validation_alias="BACKLOG_SIGNALS_DIR")
    backlog_risk_dir: Path | None = Field(default=None, validation_alias="BACKLOG_RISK_DIR")
    backlog_risk_policy_path: Path | None = Field(default=None, validation_alias="BACKLOG_RISK_POLICY_PATH")
    backlog_postgres_dsn: SecretStr | None = Field(default=None, validation_alias="BACKLOG_POSTGRES_DSN")
    postgres_dsn: SecretStr | None = Field(default=None, validation_alias="POSTGRES_DSN")
    backlog_pg_retry_seconds: float = Field(default=300.0, ge=0, validation_alias="BACKLOG_PG_RETRY_SECONDS")
    backlog_pg_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, validation_alias="BACKLOG_PG_CONNECT_TIMEOUT_SECONDS"
    )
    # ``backlog serve``'s connection limits (``api/connections.py``).
    backlog_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, validation_alias="BACKLOG_HEADER_TIMEOUT_SECONDS"
    )
    backlog_max_connections: int = Field(default=1000, ge=1, le=1_000_000, validation_alias="BACKLOG_MAX_CONNECTIONS")

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
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def postgres_dsn_value(self) -> str | None:
        """``BACKLOG_POSTGRES_DSN`` first, then ``POSTGRES_DSN`` (RUNBOOK §2)."""
        secret = self.backlog_postgres_dsn or self.postgres_dsn
        return secret.get_secret_value() if secret else None


def load_settings() -> Settings:
    return Settings()
