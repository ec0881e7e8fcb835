"""``ops/logrotate/daarion-governance``: Debian's logrotate reads it, and it rotates the job logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.router.jobs.registry import load_registry
from tests.jobs.support import REPO
from tests.web.conftest import require

CONFIG = REPO / "ops" / "logrotate" / "daarion-governance"
PATTERN = "/var/log/daarion/*.log"


def logrotate(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require("/usr/sbin/logrotate", "Debian's logrotate")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_logrotate_reads_the_shipped_file_without_an_error(tmp_path: Path) -> None:
    done = logrotate("-d", "-s", str(tmp_path / "state"), str(CONFIG))
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "error" not in output.lower(), output
    assert f"rotating pattern: {PATTERN}  weekly (12 rotations)" in output


def test_every_jobs_log_file_is_rotated() -> None:
    registry = load_registry(REPO / "ops" / "task_registry.yml")
    assert all(Path(job.log_file).parent == Path(PATTERN).parent and job.log_file.endswith(".log")
               for job in registry.jobs)


def test_a_forced_rotation_keeps_the_log_and_leaves_a_file_to_append_to(tmp_path: Path) -> None:
    logs = tmp_path / "daarion"
    logs.mkdir()
    log = logs / "backlog_alerts.log"
    log.write_text("2026-11-26T12:00:00Z job=backlog_alerts backlog_tool.notify_alerts ok in 0.05s\n")
    config = tmp_path / "daarion-governance"
    config.write_text(CONFIG.read_text().replace(PATTERN, f"{logs}/*.log"))
    done = logrotate("-f", "-s", str(tmp_path / "state"), str(config))
    assert done.returncode == 0, done.stderr
    assert (logs / "backlog_alerts.log.1").read_text().startswith("2026-11-26T12:00:00Z job=backlog_alerts")
    assert log.exists() and log.read_text() == "", "`create`: the next run appends to a fresh file"
