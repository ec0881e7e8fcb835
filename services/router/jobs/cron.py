"""Render the ``/etc/cron.d`` file from the task registry, read it back, and compare the two.

The cron file is generated, never hand-written: ``render`` is the only writer and ``compare``
reads a cron file back into jobs so ``backlog jobs check`` can say *what* differs (a schedule,
a param, a log file), not merely that two texts differ.

Each line runs the universal runner with the scheduler key sourced from an env file, so the key
never appears in the cron file (which is world-readable, mode 644)::

    0 * * * * daarion { set -a && . /etc/daarion/governance.env && set +a && cd "$REPO_ROOT" && \
python3 ops/scripts/run_governance_job.py --job … --tool … ; } >> /var/log/daarion/risk_snapshot.log 2>&1

The braces put everything, including a missing env file, into the job's log.
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from services.router.jobs.cron_syntax import MACROS, split_variable
from services.router.jobs.registry import CronSettings, TaskRegistry


def _params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, separators=(",", ":"), ensure_ascii=False)


def cron_quote(text: str) -> str:
    """Shell-quote, then escape ``%`` (cron turns a bare ``%`` into a newline)."""
    return shlex.quote(text).replace("%", "\\%")


def render(registry: TaskRegistry, *, source: str = "ops/task_registry.yml") -> str:
    c = registry.cron
    lines = [
        f"# Governance jobs (RUNBOOK §9) — GENERATED from {source} by `backlog jobs render`.",
        "# Do not edit the jobs here: change the registry, re-render, and `backlog jobs check`.",
        "#",
        "# Install: sudo cp ops/cron/jobs.cron /etc/cron.d/daarion-governance (no dot in the name:",
        "#          Debian's cron ignores /etc/cron.d files whose names contain one); chmod 644;",
        "#          edit REPO_ROOT / ROUTER_URL below if needed; then",
        "#          backlog jobs check-cron /etc/cron.d/daarion-governance   (Debian's cron has no crontab -T)",
        f"# The user field ({c.user}) must be an account on the host: Debian's cron ignores the whole file",
        "#          otherwise (\"bad username\" in syslog); `backlog jobs render --user NAME` renders another.",
        f"# The key: SCHEDULER_API_KEY=… in {c.env_file} (mode 0600, readable by {c.user}); it is",
        "#          sourced by each job and never written in this file.",
        "# Times are the cron daemon's local time: keep the host in UTC (Debian's cron ignores CRON_TZ).",
        "",
        f"SHELL={c.shell}",
        f"PATH={c.path}",
        f"REPO_ROOT={c.repo_root}",
        f"ROUTER_URL={c.router_url}",
        "",
    ]
    for job in registry.jobs:
        lines.append(f"# {job.name}: {job.tool}.{job.action} — {' '.join(job.description.split())}")
        command = job_command(c, job.name, job.tool, job.action, job.params, job.log_file)
        lines.append(f"{job.schedule} {c.user} {command}")
    return "\n".join(lines) + "\n"


def job_command(c: CronSettings, name: str, tool: str, action: str, params: dict[str, Any], log_file: str) -> str:
    runner = " ".join([
        c.python, c.runner, "--job", name, "--tool", tool, "--action", action,
        "--params-json", cron_quote(_params_json(params)),
    ])
    return (
        f'{{ set -a && . {c.env_file} && set +a && cd "$REPO_ROOT" && {runner} ; }} >> {log_file} 2>&1'
    )


# -- reading a cron file back -------------------------------------------------------------------


@dataclass
class CronJob:
    name: str
    schedule: str
    user: str
    tool: str
    action: str
    params: Any
    log_file: str
    env_file: str | None
    line_no: int


@dataclass
class CronFile:
    variables: dict[str, str] = field(default_factory=dict)
    jobs: list[CronJob] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_cron(text: str) -> CronFile:
    """The variables and runner jobs of a cron.d file; lines it cannot read become problems."""
    parsed = CronFile()
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        variable = split_variable(line)
        if variable is not None:
            parsed.variables[variable[0]] = variable[1]
            continue
        job, problem = parse_job_line(line, line_no)
        if job is not None:
            parsed.jobs.append(job)
        else:
            parsed.problems.append(f"line {line_no}: {problem}")
    return parsed


def parse_job_line(line: str, line_no: int) -> tuple[CronJob | None, str]:
    fields = line.split(None, 1 if line.startswith("@") else 5)
    count = 1 if line.startswith("@") else 5
    if len(fields) <= count:
        return None, "not a job line (schedule, user, command)"
    schedule = " ".join(fields[:count])
    if line.startswith("@") and schedule[1:] not in MACROS:
        return None, f"unknown macro {schedule}"
    user, _, command = fields[count].partition(" ")
    try:
        tokens = shlex.split(command.replace("\\%", "%"))
    except ValueError as exc:
        return None, f"cannot split the command: {exc}"
    runner_at = next((i for i, t in enumerate(tokens) if t.endswith("run_governance_job.py")), None)
    if runner_at is None:
        return None, "does not run run_governance_job.py"
    options = _options(tokens[runner_at + 1:])
    try:
        params = json.loads(options.get("--params-json", "{}"))
    except json.JSONDecodeError as exc:
        return None, f"--params-json is not JSON: {exc}"
    env_file = tokens[tokens.index(".") + 1] if "." in tokens[:runner_at] else None
    log_file = tokens[tokens.index(">>") + 1] if ">>" in tokens[:-1] else ""
    name = options.get("--job", f"line {line_no}")
    job = CronJob(name, schedule, user, options.get("--tool", ""), options.get("--action", ""), params,
                  log_file, env_file, line_no)
    return job, ""


def _options(tokens: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for flag, value in itertools.pairwise(tokens):
        if flag.startswith("--") and flag not in options:
            options[flag] = value
    return options


# -- comparing ----------------------------------------------------------------------------------


def compare(registry: TaskRegistry, cron_text: str, *, cron_name: str = "ops/cron/jobs.cron",
            registry_name: str = "ops/task_registry.yml") -> list[str]:
    """Every way the cron file and the registry disagree, one sentence each (empty: in sync)."""
    parsed = parse_cron(cron_text)
    diffs = [f"{cron_name}: {p}" for p in parsed.problems]
    c = registry.cron
    expected_vars = {"SHELL": c.shell, "PATH": c.path, "REPO_ROOT": c.repo_root, "ROUTER_URL": c.router_url}
    for name, want in expected_vars.items():
        got = parsed.variables.get(name)
        if got is None:
            diffs.append(f"{cron_name}: {name} is not set (registry cron.{name.lower()}: {want})")
        elif got != want:
            diffs.append(f"{name}: {cron_name} has {got!r}, {registry_name} has {want!r}")
    in_cron: dict[str, CronJob] = {}
    for job in parsed.jobs:
        if job.name in in_cron:
            diffs.append(f"{job.name}: appears twice in {cron_name} (lines {in_cron[job.name].line_no}, {job.line_no})")
        in_cron.setdefault(job.name, job)
    for declared in registry.jobs:
        entry = in_cron.pop(declared.name, None)
        if entry is None:
            diffs.append(f"{declared.name}: in {registry_name} but missing from {cron_name}")
            continue
        pairs: list[tuple[str, Any, Any]] = [
            ("schedule", entry.schedule, declared.schedule), ("user", entry.user, c.user),
            ("tool", entry.tool, declared.tool), ("action", entry.action, declared.action),
            ("params", entry.params, declared.params), ("log file", entry.log_file, declared.log_file),
            ("env file", entry.env_file, c.env_file),
        ]
        for what, got, want in pairs:
            if got != want:
                diffs.append(f"{declared.name}: {what} differs — {cron_name} line {entry.line_no} has "
                             f"{_show(got)}, {registry_name} has {_show(want)}")
    for name, entry in in_cron.items():
        diffs.append(f"{name}: in {cron_name} (line {entry.line_no}) but not in {registry_name}")
    if not diffs and cron_text != render(registry, source=registry_name):
        diffs.append(f"{cron_name}: jobs agree but the text is not the rendering of {registry_name} "
                     "(comments or formatting edited); run `backlog jobs render`")
    return diffs


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return repr(value)
