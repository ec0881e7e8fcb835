"""``backlog jobs check-cron``: cron.d syntax, since Debian's cron has no ``crontab -T``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.jobs.cron_syntax import check_file, check_text, errors_of
from tests.jobs.support import REPO

CRON = REPO / "ops" / "cron" / "jobs.cron"
CMD = "daarion /usr/bin/true"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_accepts_the_committed_cron_file() -> None:
    assert check_file(CRON) == []
    code, out, _ = invoke("jobs", "check-cron", "--no-host-check", str(CRON))  # its user exists on the server
    assert code == 0 and "ok:" in out


def test_a_user_without_an_account_on_this_host_fails_the_check(tmp_path: Path) -> None:
    """Debian's cron ignores the whole file ("bad username") when its user does not exist."""
    missing, present = tmp_path / "missing", tmp_path / "present"
    assert invoke("jobs", "render", "--user", "nosuchuser-bb16", "-o", str(missing))[0] == 0
    code, _, err = invoke("jobs", "check-cron", str(missing))
    lines = missing.read_text().splitlines()
    first_job = next(n for n, line in enumerate(lines, 1) if line[:1].isdigit() or line.startswith("*"))
    assert code == 1
    assert (f"line {first_job}: user 'nosuchuser-bb16' does not exist on this host: Debian's cron ignores the "
            'whole file ("bad username" in its log); create it (sudo useradd --system --no-create-home --shell '
            "/usr/sbin/nologin nosuchuser-bb16), render the file for an existing user (backlog jobs render --user "
            "NAME), or pass --no-host-check") in err
    assert invoke("jobs", "check-cron", "--no-host-check", str(missing))[0] == 0
    assert invoke("jobs", "render", "--user", "root", "-o", str(present))[0] == 0
    code, out, _ = invoke("jobs", "check-cron", str(present))
    assert code == 0 and "ok:" in out
    assert all(line.split()[5] == "root" for line in present.read_text().splitlines() if line[:1].isdigit()
               or line.startswith("*"))


def test_render_refuses_a_user_name_cron_would_not_take() -> None:
    code, _, err = invoke("jobs", "render", "--user", "Bad User", "-o", "-")
    assert code == 2 and err.startswith("error: --user: 'Bad User' is not a user name")


@pytest.mark.parametrize("line", [
    f"0 * * * * {CMD}", f"*/15 0-23/2 1,15 * mon-fri {CMD}", f"5 4 * jan,JUL sun {CMD}", f"0 0 * * 7 {CMD}",
    f"0 0 1-31/10 1-12 0-6 {CMD}", f"@reboot {CMD}", f"@daily {CMD}", f"@hourly  {CMD}", "MAILTO=\"\"",
    "PATH = /usr/bin:/bin", f"59 23 31 12 6 {CMD} --x \\%", "  # indented comment", "",
])
def test_accepts_valid_lines(line: str) -> None:
    assert check_text(line + "\n") == []


@pytest.mark.parametrize(("line", "reason"), [
    (f"60 * * * * {CMD}", "minute field '60': 60 is outside 0-59"),
    (f"0 24 * * * {CMD}", "hour field '24': 24 is outside 0-23"),
    (f"0 0 0 * * {CMD}", "day of month field '0': 0 is outside 1-31"),
    (f"0 0 * 13 * {CMD}", "month field '13': 13 is outside 1-12"),
    (f"0 0 * * 8 {CMD}", "day of week field '8': 8 is outside 0-7"),
    (f"0 0 * foo * {CMD}", "'foo' is not a number or one of jan-dec"),
    (f"0 0 * * mon-funday {CMD}", "'funday' is not a number or one of sun-sat"),
    (f"x 0 * * * {CMD}", "minute field 'x': 'x' is not a number"),
    (f"*/0 * * * * {CMD}", "step 0 is outside 1-60"),
    (f"5/10 * * * * {CMD}", "a step needs * or a range before it"),
    (f"30-10 * * * * {CMD}", "range 30-10 runs backwards"),
    (f"1,,2 * * * * {CMD}", "empty list element"),
    (f"*/x * * * * {CMD}", "step 'x' is not a number"),
    ("0 * * * *", "missing user field"),
    ("0 * * * * daarion", "missing command after user 'daarion'"),
    ("0 * * * * /usr/bin/python3 run.py", "user field '/usr/bin/python3' is not a user name"),
    ("0 * * *", "a job needs 5 time fields, a user and a command; found 4"),
    (f"@fortnightly {CMD}", "unknown macro @fortnightly"),
    ("0 * * * * daarion date +%F", "unescaped % in the command"),
    ("FOO='unterminated", "unterminated quote in the value of FOO"),
    ("MY-VAR=1", "variable names are letters, digits and _"),
])
def test_rejects_malformed_lines_each_with_its_reason(line: str, reason: str) -> None:
    problems = errors_of(check_text(line + "\n"))
    assert len(problems) == 1, problems
    assert problems[0].line_no == 1 and reason in problems[0].reason, problems[0].reason


def test_file_level_problems(tmp_path: Path) -> None:
    assert "missing newline at the end" in check_text(f"0 * * * * {CMD}")[0].reason
    assert "carriage return" in check_text(f"0 * * * * {CMD}\r\n")[0].reason
    warning = check_text("CRON_TZ=UTC\n")[0]
    assert warning.warning and "run the host in UTC" in warning.reason
    crond = tmp_path / "cron.d"
    crond.mkdir()
    dotted = crond / "jobs.cron"
    dotted.write_text(CRON.read_text())
    os.chmod(dotted, 0o664)
    reasons = [p.reason for p in check_file(dotted)]
    assert any("group- or world-writable" in r for r in reasons)
    assert any("ignored by Debian's cron" in r for r in reasons)


def test_cli_reports_every_bad_line_with_its_number(tmp_path: Path) -> None:
    bad = tmp_path / "daarion-governance"
    lines = CRON.read_text().splitlines()
    assert lines[-1].startswith("*/5 * * * * daarion ")  # the last job line (tracker_sync)
    lines[-1] = lines[-1].replace("*/5 * * * *", "*/5 * * * * *", 1)
    lines.append("0 25 * * * daarion /usr/bin/true")
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = invoke("jobs", "check-cron", "--no-host-check", str(bad))
    assert code == 1
    assert f"line {len(lines) - 1}: user field '*' is not a user name" in err
    assert f"line {len(lines)}: hour field '25': 25 is outside 0-23" in err
    assert "2 problem(s)" in err
