"""``backlog serve``: a local first run gets a fresh admin key, printed once, on 127.0.0.1 only."""

from __future__ import annotations

import gc
import importlib.util
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


def test_serve_runs_uvicorn_on_asyncio_with_httptools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server options bench/RESULTS.md measured: asyncio's loop (uvloop held connections
    back for hundreds of ms), httptools' parser, no access log, no server header, 127.0.0.1."""
    import uvicorn

    import services.router.cli.serve as serve_module

    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(serve_module, "configure_logging", lambda level: None)  # leave pytest's logging be
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **options: calls.append(options))
    try:
        result = CliRunner().invoke(app, ["serve", "--port", "8765"])
    finally:
        gc.unfreeze()  # ``warm_up`` froze this test process's heap
    assert result.exit_code == 0, result.output
    (options,) = calls
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert options["loop"] == "asyncio" and issubclass(options["http"], HttpToolsProtocol)  # type: ignore[arg-type]
    assert (options["http"].header_timeout_seconds, options["http"].max_connections) == (10, 1000)  # type: ignore[attr-defined]
    assert options["host"] == "127.0.0.1" and options["port"] == 8765
    assert options["access_log"] is False and options["server_header"] is False
    assert importlib.util.find_spec("httptools") is not None  # the parser it names is installed
