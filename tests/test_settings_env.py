"""A bad environment value: one line naming the variable, the problem and what is accepted, exit 6.

Every command reads its settings through ``Settings``; none may show a pydantic traceback, and a
value that may hold a secret (DSN, webhook URL, API key) is never repeated in the line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.clock import FixedClock, SystemClock, default_clock
from services.router.errors import BacklogError
from services.router.settings import load_settings
from tests.jobs.support import RUNNER, run_runner

REPO = Path(__file__).resolve().parents[1]
MIGRATE = REPO / "ops" / "scripts" / "migrate_backlog_postgres.py"
SECRET = "hunter2-canary-secret"

# (variable, value, what the line must say about it)
BAD_VALUES = [
    ("BACKLOG_BACKEND", "postgress", "BACKLOG_BACKEND='postgress': not one of the accepted values; "
                                     "accepted: auto, postgres, jsonl or memory"),
    ("BACKLOG_PG_RETRY_SECONDS", "abc", "BACKLOG_PG_RETRY_SECONDS='abc': not a number; accepted: seconds"),
    ("BACKLOG_PG_RETRY_SECONDS", "-1", "BACKLOG_PG_RETRY_SECONDS='-1': too small"),
    ("BACKLOG_PG_CONNECT_TIMEOUT_SECONDS", "0", "BACKLOG_PG_CONNECT_TIMEOUT_SECONDS='0': too small"),
    ("BACKLOG_NOW", "yesterday", "BACKLOG_NOW='yesterday': not an ISO 8601 timestamp; accepted: an ISO 8601 "
                                 "timestamp with an offset"),
    ("BACKLOG_NOW", "2026-11-23T06:20:00", "BACKLOG_NOW='2026-11-23T06:20:00': has no UTC offset"),
    ("BACKLOG_LOG_LEVEL", "verbose", "BACKLOG_LOG_LEVEL='verbose': not one of the accepted values; accepted: DEBUG"),
    ("BACKLOG_PORT", "http", "BACKLOG_PORT='http': not a whole number; accepted: a TCP port, 1-65535"),
    ("BACKLOG_ALERT_WEBHOOK_URL", f"hooks.example.com/{SECRET}",
     "BACKLOG_ALERT_WEBHOOK_URL=(value not shown: it may hold a secret): not an http(s) URL"),
    ("BACKLOG_POSTGRES_DSN", f"host=db password={SECRET} dbname",
     "BACKLOG_POSTGRES_DSN=(value not shown: it may hold a secret): not a valid Postgres DSN"),
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BACKLOG_BACKEND", "BACKLOG_POSTGRES_DSN", "POSTGRES_DSN", "BACKLOG_NOW", "BACKLOG_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPO_ROOT", str(REPO))
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("BACKLOG_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path


def one_error_line(code: int, stderr: str, expected: str) -> None:
    assert code == 6, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected in lines[0] and "Traceback" not in stderr and "pydantic" not in stderr
    assert SECRET not in stderr


@pytest.mark.parametrize(("variable", "value", "expected"), BAD_VALUES, ids=[f"{v}={x}" for v, x, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_variable_and_what_is_accepted(
    env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, ["dashboard", "--env", "prod"])
    one_error_line(result.exit_code, result.stderr, expected)


@pytest.mark.parametrize("command", [
    ["list"], ["generate", "weekly", "--env", "prod", "--dry-run"], ["signals", "import", "x.jsonl"],
    ["jobs", "list"], ["jobs", "history"], ["jobs", "run", "backlog_alerts", "--dry-run"], ["policy", "check"],
    ["scheduler", "--once"], ["serve", "--port", "1"],
])
def test_every_command_refuses_a_bad_value_the_same_way(
    env: Path, monkeypatch: pytest.MonkeyPatch, command: list[str],
) -> None:
    monkeypatch.setenv("BACKLOG_NOW", "yesterday")
    result = CliRunner().invoke(app, command)
    one_error_line(result.exit_code, result.stderr, "BACKLOG_NOW='yesterday': not an ISO 8601 timestamp")


def test_several_bad_values_are_named_on_the_same_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", "postgress")
    monkeypatch.setenv("BACKLOG_PG_RETRY_SECONDS", "abc")
    result = CliRunner().invoke(app, ["dashboard"])
    one_error_line(result.exit_code, result.stderr, "BACKLOG_BACKEND='postgress'")
    assert "BACKLOG_PG_RETRY_SECONDS='abc'" in result.stderr


def test_postgres_without_a_dsn_is_a_configuration_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", "postgres")
    result = CliRunner().invoke(app, ["dashboard"])
    one_error_line(result.exit_code, result.stderr, "BACKLOG_BACKEND=postgres needs BACKLOG_POSTGRES_DSN")


def test_backend_names_and_log_levels_take_any_case_and_empty_means_unset(
    env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLOG_BACKEND", " JSONL ")
    monkeypatch.setenv("BACKLOG_LOG_LEVEL", "debug")
    monkeypatch.setenv("BACKLOG_NOW", "")
    settings = load_settings()
    assert (settings.backlog_backend, settings.log_level("INFO"), settings.backlog_now) == ("jsonl", "DEBUG", None)
    assert isinstance(default_clock(settings), SystemClock)
    monkeypatch.setenv("BACKLOG_NOW", "2026-11-23T07:20:00+01:00")
    clock = default_clock()
    assert isinstance(clock, FixedClock) and clock.now().isoformat() == "2026-11-23T06:20:00+00:00"
    monkeypatch.setenv("BACKLOG_NOW", "1700000000")  # pydantic alone would read a number as a time
    with pytest.raises(BacklogError, match="not an ISO 8601 timestamp"):
        default_clock()


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REPO_ROOT": str(REPO), "TZ": "UTC",
            "BACKLOG_JSONL_DIR": str(tmp_path / "backlog"), "BACKLOG_STATE_DIR": str(tmp_path / "state"),
            "BACKLOG_REPORTS_DIR": str(tmp_path / "reports"), **extra}


def test_the_demo_refuses_a_bad_value_with_exit_6(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "services.router.demo"], cwd=REPO, capture_output=True, text=True,
                          env=script_env(tmp_path, BACKLOG_PG_RETRY_SECONDS="abc"), timeout=60, check=False)
    one_error_line(done.returncode, done.stderr, "BACKLOG_PG_RETRY_SECONDS='abc': not a number")


def test_the_migration_script_names_a_bad_dsn_variable_with_exit_6(tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 password={SECRET} port"  # libpq: missing "=" after "port"
    done = subprocess.run([sys.executable, str(MIGRATE), "--dry-run"], cwd=REPO, capture_output=True, text=True,
                          env=script_env(tmp_path, BACKLOG_POSTGRES_DSN=dsn), timeout=60, check=False)
    one_error_line(done.returncode, done.stderr, "BACKLOG_POSTGRES_DSN: not a valid Postgres DSN")
    assert "accepted: postgresql://user:pass@host:5432/db" in done.stderr
    done = subprocess.run([sys.executable, str(MIGRATE), "--dry-run", "--dsn", dsn], cwd=REPO, capture_output=True,
                          text=True, env=script_env(tmp_path), timeout=60, check=False)
    assert done.returncode == 2 and SECRET not in done.stderr, "a bad --dsn stays a usage error"


def test_the_runner_names_a_bad_router_url_or_key_with_exit_6() -> None:
    assert RUNNER.exists()
    bad_url = run_runner("--tool", "backlog_tool", "--action", "dashboard", env={"ROUTER_URL": "localhost:8000"})
    one_error_line(bad_url.code, bad_url.err, "ROUTER_URL='localhost:8000': not a router URL; accepted: http(s)://")
    bad_key = run_runner("--tool", "backlog_tool", "--action", "dashboard", key=f"{SECRET} with spaces",
                         env={"ROUTER_URL": "http://127.0.0.1:9"})
    one_error_line(bad_key.code, bad_key.err, "SCHEDULER_API_KEY: contains spaces, control or non-ASCII")
    wrong_option = run_runner("--tool", "backlog_tool", "--action", "dashboard", "--router-url", "ftp://x")
    assert wrong_option.code == 2, "a bad --router-url stays a usage error"
