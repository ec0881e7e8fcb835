"""``backlog jobs …`` and ``backlog scheduler``: governance jobs from ``ops/task_registry.yml``.

``render``/``check`` keep ``ops/cron/jobs.cron`` the rendering of the registry; ``check-cron``
validates any cron.d file (Debian's cron has no ``crontab -T``); ``run`` runs one job now,
in-process; ``history`` shows the scheduler's ledger; ``scheduler`` runs the jobs on their
schedules for hosts without cron.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from services.router.cli.app import app, console, fail, print_json
from services.router.errors import BacklogError, NotFound, ValidationFailed
from services.router.jobs.cron import compare, render
from services.router.jobs.cron_syntax import account_exists, check_file, errors_of
from services.router.jobs.ledger import JsonlRunLedger, RunRecord, open_ledger
from services.router.jobs.registry import (
    SCHEDULER_ACTOR,
    CronSettings,
    TaskRegistry,
    check_against_tools,
    default_registry_path,
    load_registry,
)
from services.router.jobs.scheduler import DEFAULT_POLL_SECONDS, Scheduler
from services.router.runtime import Runtime, build_runtime, configure_logging
from services.router.settings import Settings, load_settings
from services.router.tools.registry import did_you_mean, grants

jobs_app = typer.Typer(no_args_is_help=True, help="Governance jobs: the task registry, its cron file, runs.")
app.add_typer(jobs_app, name="jobs")

RegistryOpt = typer.Option(None, "--registry", help="Task registry (default $BACKLOG_TASK_REGISTRY, else "
                                                   "ops/task_registry.yml)")
StateOpt = typer.Option(None, "--state-dir", help="JSONL ledger directory (default $BACKLOG_STATE_DIR, else "
                                                    "ops/state)")
CRON_FILE = Path("ops") / "cron" / "jobs.cron"


def _label(path: Path, root: Path) -> str:
    """A path as the docs write it: relative to the repo root when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _registry(settings: Settings, path: Path | None) -> tuple[TaskRegistry, Path]:
    chosen = path or default_registry_path(settings)
    return load_registry(chosen), chosen


@jobs_app.command("list")
def list_jobs(registry_path: Path | None = RegistryOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """The registry's jobs: schedule, tool action, entitlement, catch-up window, log file."""
    try:
        registry, _ = _registry(load_settings(), registry_path)
    except BacklogError as exc:
        fail(exc)
    if as_json:
        print_json([{**job.model_dump(), "catch_up_minutes": int(job.catch_up.total_seconds() // 60)}
                    for job in registry.jobs])
        return
    table = Table("job", "schedule (UTC)", "tool action", "entitlement", "catch-up", "log file")
    for job in registry.jobs:
        table.add_row(job.name, job.schedule, job.call, job.entitlement, str(job.catch_up), job.log_file)
    console.print(table)


@jobs_app.command("render")
def render_cmd(
    output: str | None = typer.Option(None, "--output", "-o", help="File to write; '-' for stdout "
                                                                  "(default ops/cron/jobs.cron)"),
    user: str | None = typer.Option(None, "--user", metavar="NAME",
                                    help="The account the jobs run as (default: the registry's cron.user)"),
    registry_path: Path | None = RegistryOpt,
) -> None:
    """Write the /etc/cron.d file for the registry's jobs (the committed ops/cron/jobs.cron)."""
    settings = load_settings()
    try:
        registry, path = _registry(settings, registry_path)
        if user is not None:
            registry = with_cron_user(registry, user)
    except BacklogError as exc:
        fail(exc)
    text = render(registry, source=_label(path, settings.root))
    if output == "-":
        sys.stdout.write(text)
        return
    target = Path(output) if output else settings.root / CRON_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target} ({len(registry.jobs)} jobs)")


def with_cron_user(registry: TaskRegistry, user: str) -> TaskRegistry:
    """The registry with another cron user, validated like the registry's own ``cron.user``."""
    try:
        cron = CronSettings.model_validate({**registry.cron.model_dump(), "user": user})
    except ValidationError:
        raise ValidationFailed(f"--user: {user!r} is not a user name (lower-case letters, digits, _ and -, "
                               "at most 32, not starting with a digit or -)", field="user") from None
    return registry.model_copy(update={"cron": cron})


@jobs_app.command("check")
def check_cmd(
    registry_path: Path | None = RegistryOpt,
    cron: Path | None = typer.Option(None, "--cron", help="Cron file to compare (default ops/cron/jobs.cron)"),
    tools: bool = typer.Option(True, "--tools/--no-tools", help="Also check jobs against the served tool actions "
                                                                "and config/rbac.yml's scheduler account"),
) -> None:
    """Fail, listing the differences, when the cron file and the registry disagree."""
    settings = load_settings()
    try:
        registry, path = _registry(settings, registry_path)
    except BacklogError as exc:
        fail(exc)
    cron_path = cron or settings.root / CRON_FILE
    reg_label, cron_label = _label(path, settings.root), _label(cron_path, settings.root)
    try:
        cron_text = cron_path.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot read {cron_label}: {exc.strerror}; run `backlog jobs render`", err=True)
        raise typer.Exit(1) from None
    problems = compare(registry, cron_text, cron_name=cron_label, registry_name=reg_label)
    problems += [f"{cron_label}: {p}" for p in errors_of(check_file(cron_path))]
    if tools:
        problems += tool_problems(registry, settings)
    if problems:
        typer.echo(f"{reg_label} and {cron_label} disagree:", err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {cron_label} matches {reg_label} ({len(registry.jobs)} jobs)")


def tool_problems(registry: TaskRegistry, settings: Settings) -> list[str]:
    """Jobs vs the router's tool actions and the scheduler account in config/rbac.yml."""
    from services.router.access.rbac import read_accounts
    from services.router.tools.catalog import build_registry

    problems = check_against_tools(registry, build_registry())
    rbac_path = settings.rbac_path
    try:
        account = next((a for a in read_accounts(rbac_path) if a.name == SCHEDULER_ACTOR), None)
    except BacklogError as exc:
        return [*problems, exc.message]
    if account is None:
        return [*problems, f"{rbac_path}: no {SCHEDULER_ACTOR!r} account"]
    for job in registry.jobs:
        if not grants(account.entitlements, job.entitlement):
            problems.append(f"{job.name}: the scheduler account in {rbac_path} lacks {job.entitlement}")
    return problems


@jobs_app.command("check-cron")
def check_cron_cmd(
    file: Path = typer.Argument(..., help="A cron.d file, e.g. /etc/cron.d/daarion-governance"),
    host_check: bool = typer.Option(True, "--host-check/--no-host-check",
                                    help="Also require each line's user to exist on this host (off: check a file "
                                         "for another machine)"),
) -> None:
    """Validate cron.d syntax (Debian's cron has no `crontab -T`): fields, names, steps, user, variables."""
    try:
        problems = check_file(file, user_exists=account_exists if host_check else None)
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(1) from None
    for problem in problems:
        typer.echo(f"{file}: {problem}", err=True)
    errors = errors_of(problems)
    if errors:
        typer.echo(f"{file}: {len(errors)} problem(s); cron would skip or misread those lines", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {file}")


def _history_rows(records: list[RunRecord]) -> Table:
    table = Table("job", "slot (UTC)", "status", "host", "pid", "try", "duration", "result")
    for r in records:
        duration = f"{r.duration_ms / 1000:.2f}s" if r.duration_ms is not None else ""
        table.add_row(r.job, r.slot.strftime("%Y-%m-%d %H:%M"), r.status, r.host or "", str(r.pid or ""),
                      str(r.attempts), duration, r.error or r.summary or "")
    return table


@jobs_app.command("history")
def history_cmd(
    job: str | None = typer.Option(None, "--job", help="Only this job"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    state: Path | None = StateOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent scheduler runs: job, slot, host, status, duration, result summary."""
    try:
        ledger = open_ledger(load_settings(), state=state)
        try:
            records = ledger.history(job, limit)
        finally:
            ledger.close()
    except BacklogError as exc:
        fail(exc)
    if as_json:
        print_json([r.to_json() for r in records])
    else:
        console.print(_history_rows(records))


@jobs_app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="A job name from the registry"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what the job would do; change nothing"),
    registry_path: Path | None = RegistryOpt,
) -> None:
    """Run one job now, in-process, as the scheduler account (not recorded as a scheduled slot)."""
    runtime: Runtime | None = None
    try:
        registry, _ = _registry(load_settings(), registry_path)
        try:
            job = registry.get(name)
        except KeyError:
            raise NotFound(f"unknown job {name!r}{did_you_mean(name, list(registry.names))}", field="name") from None
        runtime = build_runtime()
        single = registry.model_copy(update={"jobs": [job]})
        problems = check_against_tools(single, runtime.registry)
        if problems:
            raise NotFound("; ".join(problems), field="name")
        params: dict[str, Any] = {**job.params, **({"dry_run": True} if dry_run else {})}
        result = runtime.execute(SCHEDULER_ACTOR, job.tool, job.action, params)
    except BacklogError as exc:
        fail(exc)
    finally:
        if runtime is not None:
            runtime.close()
    print_json(result)


@app.command("scheduler")
def scheduler_cmd(
    jobs: str | None = typer.Option(None, "--jobs", help="Comma-separated job names (default: all)"),
    poll_seconds: float = typer.Option(DEFAULT_POLL_SECONDS, "--poll-seconds", min=0.01),
    once: bool = typer.Option(False, "--once", help="One pass over the due slots, then exit"),
    state: Path | None = StateOpt,
    registry_path: Path | None = RegistryOpt,
) -> None:
    """Run the registry's jobs on their schedules, for hosts without cron (several hosts: Postgres)."""
    runtime: Runtime | None = None
    ledger = None
    try:
        settings = load_settings()
        configure_logging("INFO", settings)
        registry, _ = _registry(settings, registry_path)
        names = [n.strip() for n in jobs.split(",") if n.strip()] if jobs else None
        runtime = build_runtime(settings)
        chosen = registry.model_copy(update={"jobs": [j for j in registry.jobs if not names or j.name in names]})
        problems = check_against_tools(chosen, runtime.registry)
        if problems:
            raise NotFound("cannot schedule: " + "; ".join(problems), field="jobs")
        ledger = open_ledger(settings, state=state)
        if isinstance(ledger, JsonlRunLedger):
            ledger.acquire_single_instance()
        scheduler = Scheduler(registry=registry, runtime=runtime, ledger=ledger, jobs=names)
        typer.echo(f"scheduler: {len(scheduler.jobs)} job(s) on {scheduler.host} pid {scheduler.pid}, "
                   f"backend {settings.backlog_backend}: {ledger.describe()}")
        if once:
            scheduler.tick()
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        runtime.start_background()  # Postgres retried and the journals replayed on a timer, not per job
        scheduler.serve(poll_seconds=poll_seconds, stop=stop)
        typer.echo("scheduler: stopped")
    except BacklogError as exc:
        fail(exc)
    finally:
        if ledger is not None:
            ledger.close()
        if runtime is not None:
            runtime.close()
