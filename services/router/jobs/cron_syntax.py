"""A syntax checker for ``/etc/cron.d`` files, because Debian's cron has no ``crontab -T``.

It follows what Debian's (Vixie-derived) cron accepts, and also refuses what cron accepts but
almost never means: an unescaped ``%`` (cron turns it into a newline) and a missing final newline
(cron may drop the last line). Each rejection names the line and the reason.

Accepted per line: blank lines and ``#`` comments; variable lines ``NAME=value`` (value optionally
quoted); job lines ``<5 fields> <user> <command>`` or ``@macro <user> <command>``. Fields take
``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b-c``, and the names
``jan`` to ``dec`` (month) and ``sun`` to ``sat`` (day of week, where 0 and 7 are both Sunday).
"""

from __future__ import annotations

import pwd
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MACROS = frozenset({"reboot", "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"})
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


FIELDS = (
    FieldSpec("minute", 0, 59),
    FieldSpec("hour", 0, 23),
    FieldSpec("day of month", 1, 31),
    FieldSpec("month", 1, 12, MONTHS, 1),
    FieldSpec("day of week", 0, 7, DAYS, 0),
)
USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
VARIABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
# /etc/cron.d entries are run-parts style names: Debian's cron skips any other file silently.
CRON_D_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class CronProblem:
    line_no: int
    line: str
    reason: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"line {self.line_no}" if self.line_no else "file"
        kind = "warning: " if self.warning else ""
        return f"{where}: {kind}{self.reason}" + (f": {self.line.strip()}" if self.line.strip() else "")


def split_variable(line: str) -> tuple[str, str] | None:
    """``NAME=value`` → (name, value without surrounding quotes); None for other lines.

    A job line never matches: its first field cannot hold ``=`` before a space.
    """
    match = VARIABLE.match(line.strip())
    if match is None:
        return None
    value = match.group(2).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return match.group(1), value


def check_field(text: str, spec: FieldSpec) -> str | None:
    """None when ``text`` is a valid value for the field, else why not."""
    for item in text.split(","):
        if not item:
            return f"{spec.name} field {text!r} has an empty list element"
        problem = _check_item(item, spec)
        if problem is not None:
            return f"{spec.name} field {text!r}: {problem}"
    return None


def _check_item(item: str, spec: FieldSpec) -> str | None:
    base, slash, step = item.partition("/")
    if slash:
        if not step.isdigit():
            return f"step {step!r} is not a number"
        if int(step) == 0 or int(step) > spec.high - spec.low + 1:
            return f"step {step} is outside 1-{spec.high - spec.low + 1}"
        if base != "*" and "-" not in base:
            return f"a step needs * or a range before it ({item!r})"
    if base == "*":
        return None
    low_text, dash, high_text = base.partition("-")
    low, problem = _value(low_text, spec)
    if problem is not None:
        return problem
    if not dash:
        return None
    high, problem = _value(high_text, spec)
    if problem is not None:
        return problem
    if low is not None and high is not None and low > high:
        return f"range {base} runs backwards"
    return None


def _value(text: str, spec: FieldSpec) -> tuple[int | None, str | None]:
    if text.isdigit():
        number = int(text)
        if not spec.low <= number <= spec.high:
            return None, f"{number} is outside {spec.low}-{spec.high}"
        return number, None
    lowered = text.lower()
    if spec.names and lowered in spec.names:
        return spec.names.index(lowered) + spec.names_start, None
    if spec.names:
        return None, f"{text!r} is not a number or one of {spec.names[0]}-{spec.names[-1]}"
    return None, f"{text!r} is not a number" if text else "missing number"


UserExists = Callable[[str], bool]


def account_exists(user: str) -> bool:
    """Whether ``user`` names an account on this host (what Debian's cron looks up for each line)."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def missing_user(user: str) -> str:
    return (f"user {user!r} does not exist on this host: Debian's cron ignores the whole file (\"bad username\" "
            f"in its log); create it (sudo useradd --system --no-create-home --shell /usr/sbin/nologin {user}), "
            "render the file for an existing user (backlog jobs render --user NAME), or pass --no-host-check "
            "to check a file meant for another machine")


def check_job_line(line: str, *, user_exists: UserExists | None = None) -> str | None:
    """None when the job line is valid, else the first reason it is not.

    With ``user_exists``, a user field that names no account is a problem too (Debian's cron
    refuses it; without the check a file can be checked on a build machine)."""
    if line.startswith("@"):
        macro, _, rest = line.partition(" ")
        if macro[1:].lower() not in MACROS:
            return f"unknown macro {macro} (expected one of @{', @'.join(sorted(MACROS))})"
        fields_text: list[str] = []
        rest = rest.strip()
    else:
        parts = line.split(None, 5)
        if len(parts) < 5:
            return f"a job needs 5 time fields, a user and a command; found {len(parts)} field(s)"
        fields_text, rest = parts[:5], (parts[5] if len(parts) > 5 else "")
    for text, spec in zip(fields_text, FIELDS, strict=False):
        problem = check_field(text, spec)
        if problem is not None:
            return problem
    user, _, command = rest.partition(" ")
    if not user:
        return "missing user field (cron.d lines need a user between the schedule and the command)"
    if not USER.match(user):
        return f"user field {user!r} is not a user name (cron.d lines need a user before the command)"
    if user_exists is not None and not user_exists(user):
        return missing_user(user)
    command = command.strip()
    if not command:
        return f"missing command after user {user!r}"
    if re.search(r"(?<!\\)%", command):
        return "unescaped % in the command (cron turns it into a newline); write \\%"
    return None


def check_text(text: str, *, user_exists: UserExists | None = None) -> list[CronProblem]:
    """Every problem in a cron.d file's text (none, or warnings only, when cron reads it as intended)."""
    problems: list[CronProblem] = []
    if text and not text.endswith("\n"):
        problems.append(CronProblem(0, "", "missing newline at the end of the file (cron may ignore the last line)"))
    for line_no, raw in enumerate(text.split("\n"), start=1):
        if raw.endswith("\r"):
            problems.append(CronProblem(line_no, raw, "carriage return (DOS line ending)"))
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        variable = split_variable(line)
        if variable is not None:
            name, _ = variable
            value = VARIABLE.match(line).group(2).strip()  # type: ignore[union-attr]
            if value[:1] in "'\"" and (len(value) < 2 or value[-1] != value[0]):
                problems.append(CronProblem(line_no, raw, f"unterminated quote in the value of {name}"))
            elif name in {"CRON_TZ", "TZ"}:
                problems.append(CronProblem(
                    line_no, raw, f"{name} does not change when Debian's cron runs jobs; run the host in UTC",
                    warning=True,
                ))
            continue
        if "=" in line.split(None, 1)[0] and not line.startswith("@"):
            problems.append(CronProblem(line_no, raw, "variable names are letters, digits and _"))
            continue
        reason = check_job_line(line, user_exists=user_exists)
        if reason is not None:
            problems.append(CronProblem(line_no, raw, reason))
    return problems


def errors_of(problems: list[CronProblem]) -> list[CronProblem]:
    return [p for p in problems if not p.warning]


def check_file(path: Path, *, user_exists: UserExists | None = None) -> list[CronProblem]:
    """``check_text`` plus what Debian's cron requires of a file in an ``/etc/cron.d`` directory.

    ``user_exists=account_exists`` checks the user fields against this host's accounts."""
    problems = check_text(path.read_text(encoding="utf-8"), user_exists=user_exists)
    if path.parent.name == "cron.d":
        if not CRON_D_NAME.match(path.name):
            problems.insert(0, CronProblem(0, "", f"file name {path.name!r} is ignored by Debian's cron in "
                                                  "/etc/cron.d (use letters, digits, - and _ only)"))
        mode = path.stat().st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.insert(0, CronProblem(0, "", "group- or world-writable: cron ignores it (chmod 644)"))
    return problems
