"""``ops/scripts/run_governance_job.py`` against the real router on loopback (RUNBOOK §9)."""

from __future__ import annotations

import http.server
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from services.router.clock import FixedClock
from services.router.errors import StoreUnavailable
from services.router.runtime import Runtime, build_runtime
from services.router.settings import Settings
from services.router.stores.memory import MemoryBacklogStore
from tests.conftest import NOW
from tests.jobs.support import KEYS, REPO, RUNNER, closed_port, live_router, run_runner

NO_DIGEST = "No platform digest found. Run architecture_pressure_tool.digest first."


class FlakyStore:
    """A memory store whose ``status()`` answers 503-worthy errors the first ``failures`` times."""

    def __init__(self, inner: MemoryBacklogStore) -> None:
        self.inner = inner
        self.failures = 0

    def status(self) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("store briefly unavailable", retry_after_seconds=1)
        return self.inner.status()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FlakyStore, Runtime]]:
    tmp = tmp_path_factory.mktemp("router")
    clock = FixedClock(NOW)
    store = FlakyStore(MemoryBacklogStore(clock=clock))
    settings = Settings(REPO_ROOT=REPO, BACKLOG_REPORTS_DIR=tmp / "reports", BACKLOG_STATE_DIR=tmp / "state")
    runtime = build_runtime(settings, clock=clock, store=store)
    with live_router(runtime) as url:
        yield url, store, runtime


@pytest.fixture
def url(router: tuple[str, FlakyStore, Runtime]) -> str:
    router[1].failures = 0
    return router[0]


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_governance_job", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_success_prints_one_timestamped_summary_line_and_verbose_the_result(url: str) -> None:
    """Cron appends stdout to the job's log every run: one line, not the result JSON. The job's
    params are the registry's (``{}``: the policy's retention_days, 180), as a job call must be."""
    r = run_runner("--job", "daily_backlog_cleanup", "--tool", "backlog_tool", "--action", "cleanup",
                   "--params-json", "{}", "--router-url", url)
    assert r.code == 0, r.err
    (log_line,) = r.out.splitlines()
    assert log_line[:20].endswith("Z") and log_line[4] == "-" and log_line[10] == "T"
    assert log_line.endswith(f" job=daily_backlog_cleanup backlog_tool.cleanup ok in {log_line.split(' in ')[1]}")
    assert log_line.split(" via ")[1] == f"{url}/v1/tools/execute: retention_days=180 removed=0"
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--params-json", '{"retention_days": 180}',
                   "--router-url", url, "--verbose")
    assert r.code == 0, r.err
    assert r.result["removed"] == 0 and r.result["dry_run"] is False and r.result["retention_days"] == 180


def test_the_summary_counts_lists_in_words_and_flattens_counts() -> None:
    runner = load_runner()
    assert runner.result_counts({"env": "prod", "week": "2026-W48", "dry_run": False, "stale_digest": True,
                                 "created": 14, "updated": 0, "items": [{}] * 16, "ignored_files": []}) == (
        "stale_digest created=14 updated=0, 16 items, 0 ignored_files")
    assert runner.result_counts({"counts": {"accepted": 3, "rejected": 1}, "rejected": [{}]}) == (
        "accepted=3 rejected=1, 1 rejected")
    assert runner.result_counts(["not", "a", "dict"]) == ""


def test_router_url_comes_from_the_environment(url: str) -> None:
    r = run_runner("--tool", "backlog_tool", "--action", "dashboard", "--params-json", '{"env":"prod"}',
                   "--verbose", env={"ROUTER_URL": url + "/"})
    assert r.code == 0, r.err
    assert r.result["total"] == 0


def test_dry_run_sends_dry_run_and_prints_the_plan(url: str) -> None:
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--dry-run", "--router-url", url)
    assert r.code == 0, r.err
    assert "(dry run) ok" in r.out.splitlines()[0]
    assert r.result["dry_run"] is True and r.result["would_remove"] == 0


def test_without_key_http_401_and_a_hint(url: str) -> None:
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", url, key=None)
    assert r.code == 4
    lines = r.err.splitlines()
    assert lines[0] == "HTTP 401 from /v1/tools/execute"
    assert "SCHEDULER_API_KEY is not set" in lines[1]
    assert "FAILED exit=4" in r.out


def test_wrong_key_http_401_says_the_key_was_not_accepted(url: str) -> None:
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", url, key="x" * 40)
    assert r.code == 4 and r.err.splitlines()[0] == "HTTP 401 from /v1/tools/execute"
    assert "did not accept SCHEDULER_API_KEY" in r.err


def test_key_without_the_entitlement_is_403(url: str) -> None:
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", url, key=KEYS["readonly"])
    assert r.code == 5
    assert r.err.splitlines()[0] == "HTTP 403 from /v1/tools/execute"
    assert "tools.backlog.admin" in r.err


def test_unreachable_router_names_the_url_after_bounded_retries() -> None:
    target = f"http://127.0.0.1:{closed_port()}"
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", target, "--retries", "2")
    assert r.code == 3
    assert f"Cannot reach {target}" in r.err.splitlines()
    assert r.err.count("retry ") == 2 and "3 attempt(s)" in r.err


def test_default_router_url(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = load_runner()
    monkeypatch.delenv("ROUTER_URL", raising=False)
    assert runner.router_base(None) == "http://localhost:8000"
    monkeypatch.setenv("ROUTER_URL", "http://router:9000/")
    assert runner.router_base(None) == "http://router:9000"
    assert runner.router_base("https://other") == "https://other"


def test_tool_error_prints_the_routers_error_text(url: str) -> None:
    r = run_runner("--tool", "architecture_pressure_tool", "--action", "latest", "--params-json", '{"env":"prod"}',
                   "--router-url", url)
    assert r.code == 6
    assert r.err.splitlines()[0] == f"error: {NO_DIGEST}"
    r = run_runner("--tool", "backlog_tool", "--action", "get", "--params-json", '{"id":"bl_0123456789abcdef"}',
                   "--router-url", url)
    assert r.code == 6 and r.err.startswith("error: no backlog item bl_0123456789abcdef")


def test_invalid_params_json_fails_before_any_request() -> None:
    target = f"http://127.0.0.1:{closed_port()}"  # a request would say "Cannot reach"
    for text, expected in [("{env: prod}", "is not valid JSON"), ('["prod"]', "must be a JSON object, got list"),
                           ('{"tool": "x"}', "may not set tool")]:
        r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--params-json", text, "--router-url", target)
        assert r.code == 2, (text, r.err)
        assert expected in r.err and "Cannot reach" not in r.err


def test_retries_a_503_then_succeeds(router: tuple[str, FlakyStore, Runtime]) -> None:
    url, store, _ = router
    store.failures = 2
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", url, "--retries", "3",
                   "--verbose")
    assert r.code == 0, r.err
    assert r.err.count("HTTP 503 from /v1/tools/execute") == 2 and r.result["removed"] == 0


def test_a_503_that_persists_fails_with_its_own_exit_code(router: tuple[str, FlakyStore, Runtime]) -> None:
    url, store, _ = router
    store.failures = 10
    r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", url, "--retries", "1")
    assert r.code == 7
    assert "HTTP 503 from /v1/tools/execute" in r.err.splitlines() and "error: store briefly unavailable" in r.err
    store.failures = 0


def test_retry_after_is_honoured_within_the_cap() -> None:
    runner = load_runner()
    assert runner.retry_delay(0, 2.0, 60.0, "5") == 5.0
    assert runner.retry_delay(0, 2.0, 3.0, "5") == 3.0
    assert 1.0 <= runner.retry_delay(0, 2.0, 60.0, None) <= 2.0
    assert runner.retry_delay(10, 2.0, 60.0, None) == 60.0


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(1.5)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_no_answer_within_timeout_is_not_retried() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{server.server_address[1]}"
        r = run_runner("--tool", "backlog_tool", "--action", "cleanup", "--router-url", target, "--timeout", "0.3")
    finally:
        server.shutdown()
        server.server_close()
    assert r.code == 3
    assert r.err.splitlines()[0] == f"Cannot reach {target}" and "no answer within --timeout 0.3s" in r.err
    assert "retry" not in r.err


def test_help_documents_the_exit_codes() -> None:
    r = run_runner("--help")
    assert r.code == 0
    for line in ("3  Cannot reach", "4  HTTP 401 from /v1/tools/execute", "6  error: <text>", "SCHEDULER_API_KEY"):
        assert line in r.out


def test_the_rendered_cron_line_runs_the_job_with_the_key_from_the_env_file(url: str, tmp_path: Path) -> None:
    """A cron line exactly as rendered, run through /bin/sh the way cron runs it."""
    import subprocess

    from services.router.jobs.cron import parse_cron, render
    from services.router.jobs.registry import load_registry

    registry = load_registry(REPO / "ops" / "task_registry.yml")
    env_file = tmp_path / "governance.env"
    env_file.write_text(f"SCHEDULER_API_KEY={KEYS['scheduler']}\n")
    log = tmp_path / "backlog_cleanup.log"
    cron = registry.cron.model_copy(update={"env_file": str(env_file), "repo_root": str(REPO), "router_url": url})
    jobs = [j.model_copy(update={"log_file": str(log)}) for j in registry.jobs if j.name == "daily_backlog_cleanup"]
    text = render(registry.model_copy(update={"cron": cron, "jobs": jobs}))
    variables = parse_cron(text).variables
    line = next(ln for ln in text.splitlines() if ln.startswith("40 3 * * *"))
    command = line.split(None, 6)[6].replace("\\%", "%")
    environ = {**variables, "HOME": str(tmp_path), "LOGNAME": "cron"}
    assert KEYS["scheduler"] not in text
    for _ in range(2):
        subprocess.run([variables["SHELL"], "-c", command], env=environ, check=True, timeout=60)
    lines = log.read_text().splitlines()
    assert len(lines) == 2, "one summary line per run in the cron log, not the result JSON"
    assert all("job=daily_backlog_cleanup backlog_tool.cleanup ok" in ln and ln.endswith("removed=0") for ln in lines)
