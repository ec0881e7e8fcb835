"""``backlog serve``: a local first run gets a fresh admin key, printed once, on 127.0.0.1 only."""

from __future__ import annotations

import gc
import importlib.util
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.router.access.rbac import RbacConfig, read_accounts
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[socket.socket]]]:
    """``backlog serve`` up to the point uvicorn would serve: its config and the bound sockets."""
    import uvicorn

    import services.router.cli.serve as serve_module

    for name in ("BACKLOG_ADMIN_API_KEY", "SCHEDULER_API_KEY", "ONCALL_API_KEY", "READONLY_API_KEY",
                 "ALERTMANAGER_API_KEY", "BACKLOG_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACKLOG_BACKEND", "jsonl")
    monkeypatch.setenv("BACKLOG_JSONL_DIR", str(tmp_path / "backlog"))
    monkeypatch.setenv("BACKLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(serve_module, "configure_logging", lambda *a, **k: None)  # leave pytest's logging be
    calls: list[tuple[Any, list[socket.socket]]] = []

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        assert sockets is not None and all(s.fileno() >= 0 for s in sockets), "serves the socket bound first"
        calls.append((server.config, [s.getsockname() for s in sockets]))  # type: ignore[misc]

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return calls


def invoke_serve(*args: str) -> Any:
    try:
        return CliRunner().invoke(app, ["serve", *args])
    finally:
        gc.unfreeze()  # ``warm_up`` froze this test process's heap


def test_serve_runs_uvicorn_on_asyncio_with_httptools(served: list[tuple[Any, list[Any]]]) -> None:
    """The server options bench/RESULTS.md measured: asyncio's loop (uvloop held connections
    back for hundreds of ms), httptools' parser, no access log, no server header, 127.0.0.1."""
    port = free_port()
    result = invoke_serve("--port", str(port))
    assert result.exit_code == 0, result.output
    ((config, sockets),) = served
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert config.loop == "asyncio" and issubclass(config.http, HttpToolsProtocol)
    assert (config.http.header_timeout_seconds, config.http.max_connections) == (10, 1000)
    assert config.host == "127.0.0.1" and config.port == port and sockets == [("127.0.0.1", port)]
    assert config.access_log is False and config.server_header is False
    assert importlib.util.find_spec("httptools") is not None  # the parser it names is installed


def test_the_port_comes_from_backlog_port_and_the_option_wins(
    served: list[tuple[Any, list[Any]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_env, from_option = free_port(), free_port()
    monkeypatch.setenv("BACKLOG_PORT", str(from_env))
    result = invoke_serve()
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{from_env}/v1/backlog/dashboard?env=prod" in result.stdout
    assert invoke_serve("--port", str(from_option)).exit_code == 0
    assert [c.port for c, _ in served] == [from_env, from_option]


def test_a_second_serve_on_a_busy_port_keeps_the_running_servers_key_file(
    served: list[tuple[Any, list[Any]]], tmp_path: Path,
) -> None:
    """The first server's key is in .local-keys; a second ``serve`` that cannot bind writes nothing."""
    key_file = tmp_path / ".local-keys"
    key_file.write_text("BACKLOG_ADMIN_API_KEY=the-running-servers-key\n")
    with socket.create_server(("127.0.0.1", 0)) as running:
        port = running.getsockname()[1]
        result = invoke_serve("--port", str(port), "--key-file", str(key_file))
    assert result.exit_code == 4 and served == []
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "--port N or BACKLOG_PORT=N (make run PORT=N)" in result.stderr and "Traceback" not in result.output
    assert key_file.read_text() == "BACKLOG_ADMIN_API_KEY=the-running-servers-key\n"
    assert "generated a local admin key" not in result.stdout


def test_make_run_takes_a_port() -> None:
    import subprocess

    done = subprocess.run(["make", "-n", "run", "PORT=8001"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, check=True)
    assert "backlog serve --key-file .local-keys --port 8001" in done.stdout
