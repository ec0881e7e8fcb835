"""``backlog serve``: a local first run gets a fresh admin key, printed once, on 127.0.0.1 only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.api.rbac import RbacConfig, read_accounts
from services.router.cli import app
from services.router.cli.serve import local_admin_keys
from services.router.errors import ValidationFailed
from tests.api.conftest import KEYS, RBAC_FILE


def no_keys() -> RbacConfig:
    return RbacConfig(read_accounts(RBAC_FILE), {}, source=str(RBAC_FILE))


def test_generates_a_random_admin_key_and_prints_it_once(capsys: pytest.CaptureFixture[str]) -> None:
    first = local_admin_keys(no_keys(), host="127.0.0.1", port=8000, key_file=None)
    out = capsys.readouterr().out
    second = local_admin_keys(no_keys(), host="127.0.0.1", port=8000, key_file=None)
    assert [a.name for a in first.enabled] == ["admin"]
    key = out.split("for this run only: ")[1].split()[0]
    assert len(key) >= 40 and out.count(key) == 2  # the announcement and the curl line
    assert f'curl -H "X-API-Key: {key}" "http://127.0.0.1:8000/v1/backlog/dashboard?env=prod"' in out
    assert first.identify(key) is not None and second.identify(key) is None  # never a fixed default


def test_configured_keys_are_used_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    configured = RbacConfig(read_accounts(RBAC_FILE), {"scheduler": KEYS["scheduler"]})
    assert local_admin_keys(configured, host="0.0.0.0", port=8000, key_file=None) is configured
    assert capsys.readouterr().out == ""


def test_a_generated_key_never_serves_beyond_localhost() -> None:
    with pytest.raises(ValidationFailed, match="BACKLOG_ADMIN_API_KEY"):
        local_admin_keys(no_keys(), host="0.0.0.0", port=8000, key_file=None)


def test_key_file_is_private_and_sourceable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".local-keys"
    path.write_text("old")
    path.chmod(0o644)
    rbac = local_admin_keys(no_keys(), host="127.0.0.1", port=9000, key_file=path)
    name, _, key = path.read_text().strip().partition("=")
    assert name == "BACKLOG_ADMIN_API_KEY" and rbac.identify(key) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in capsys.readouterr().out


def test_serve_is_a_backlog_command() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--key-file" in result.output
