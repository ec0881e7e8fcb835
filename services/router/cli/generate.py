"""``backlog generate weekly|daily`` and ``backlog policy check``.

``backlog generate weekly --env prod --dry-run`` prints the plan a Monday run would apply — one
row per candidate with its action and the reason in words — and writes nothing; without
``--dry-run`` it applies exactly that plan. ``--policy FILE`` swaps in another policy for this
one run, so ``--policy new.yml --dry-run`` previews what a policy change would do against the
real backlog before anyone edits ``config/backlog_policy.yml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from services.router.cli.app import JsonOpt, app, console, fail, print_json, run
from services.router.cli.render import PRIORITY_STYLE
from services.router.errors import BacklogError
from services.router.policy import BacklogPolicy, load_policy
from services.router.service_catalog import catalog_files, load_catalog
from services.router.settings import load_settings

generate_app = typer.Typer(name="generate", no_args_is_help=True,
                           help="Generate backlog items from the platform (weekly) or risk (daily) digest.")
policy_app = typer.Typer(name="policy", no_args_is_help=True, help="The backlog policy (config/backlog_policy.yml).")
app.add_typer(generate_app)
app.add_typer(policy_app)

ACTION_STYLE = {"create": "bold green", "update": "yellow", "unchanged": "dim", "held_back": "magenta",
                "suppressed": "cyan"}
EnvOpt = typer.Option(..., "--env", help="Environment, e.g. prod")
DryRunOpt = typer.Option(False, "--dry-run", help="Show the plan; write nothing.")
PolicyOpt = typer.Option(None, "--policy", metavar="FILE", help="Use this policy file for this run.")


def plan_table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, kwargs in (("#", {"justify": "right"}), ("action", {}), ("service", {}), ("category", {}),
                        ("pri", {}), ("owner", {}), ("reason", {"overflow": "fold", "ratio": 1})):
        table.add_column(col, **kwargs)
    for row in items:
        action, pri = row["action"], row["priority"]
        table.add_row(
            str(row.get("rank", "")), Text(action, style=ACTION_STYLE.get(action, "")), row["service"],
            row["category"], Text(pri, style=PRIORITY_STYLE.get(pri, "")), row["owner"], Text(row["reason"]),
        )
    return table


def summary_line(result: dict[str, Any]) -> str:
    counts = (f"{result['created']} created, {result['updated']} updated, {result['unchanged']} unchanged, "
              f"{result['held_back']} held back")
    if result["dry_run"]:
        counts = (f"{result['created']} to create, {result['updated']} to update, {result['unchanged']} unchanged, "
                  f"{result['held_back']} held back")
    # The lifecycle's figures only when there are any: with its defaults the line reads as before.
    extra = [f"{result['suppressed']} suppressed (accepted)"] if result.get("suppressed") else []
    cleared, moved = result.get("cleared") or [], result.get("reassigned") or []
    if cleared:
        extra.append(f"{len(cleared)} cleared" + ("" if result["dry_run"] else
                                                  f" ({result.get('closed_on_clear', 0)} closed on clear)"))
    if moved:
        extra.append(f"{len(moved)} {'to reassign' if result['dry_run'] else 'reassigned'}")
    tail = " — dry run, nothing written" if result["dry_run"] else ""
    return f"{result['env']} {result['week']}: {', '.join([counts, *extra])}{tail}"


def render_plan(result: dict[str, Any]) -> None:
    """The plan as a table and one summary line (a skipped run says why instead)."""
    if result.get("skipped"):
        console.print(f"generation skipped for {result['env']}: {result['reason']}", markup=False, highlight=False)
        return
    daily = bool(result.get("date"))
    kind = "daily risk" if daily else "weekly platform"
    period = "today" if daily else "the current ISO week"
    stale = f"  [bold red]STALE: the digest is older than {period}[/]" if result["stale_digest"] else ""
    console.print(f"[bold]Backlog generation — {result['env']}[/], from the {kind} digest "
                  f"[cyan]{result['digest']}[/] (week {result['week']}){stale}", highlight=False)
    if result["items"]:
        console.print(plan_table(result["items"], "Plan (dry run)" if result["dry_run"] else "Applied"))
    else:
        console.print("No service in this digest meets a category rule: nothing to generate.")
    for c in result.get("cleared") or []:
        console.print(f"cleared: {c['service']}/{c['category']} — {c['reason']}", markup=False, highlight=False,
                      soft_wrap=True)
    for m in result.get("reassigned") or []:
        console.print(f"reassign: {m['id']} {m['service']}/{m['category']} {m['from']} -> {m['to']} ({m['reason']})",
                      markup=False, highlight=False, soft_wrap=True)
    console.print(summary_line(result), markup=False, highlight=False, soft_wrap=True)
    for ignored in result.get("ignored_files", []):
        console.print(f"ignored (not read): {ignored['file']} — {ignored['reason']}", markup=False,
                      highlight=False, soft_wrap=True)


@generate_app.command("weekly")
def weekly(env: str = EnvOpt, dry_run: bool = DryRunOpt, policy: Path | None = PolicyOpt,
           as_json: bool = JsonOpt) -> None:
    """Items from the latest platform digest (ops/reports/platform/YYYY-Www.json)."""
    run("auto_generate_weekly", {"env": env, "dry_run": dry_run}, as_json=as_json, render=render_plan,
        policy=policy)


@generate_app.command("daily")
def daily(env: str = EnvOpt, dry_run: bool = DryRunOpt, policy: Path | None = PolicyOpt,
          as_json: bool = JsonOpt) -> None:
    """Items from the latest risk digest (ops/reports/risk/YYYY-MM-DD.json), one per service and week."""
    run("auto_generate_daily", {"env": env, "dry_run": dry_run}, as_json=as_json, render=render_plan,
        policy=policy)


def policy_summary(policy: BacklogPolicy) -> list[str]:
    gen = policy.generation
    return [
        f"  categories (weekly digest): {', '.join(policy.categories_for('weekly')) or 'none'}",
        f"  categories (daily digest): {', '.join(policy.categories_for('daily')) or 'none'}",
        f"  max_items_per_run {policy.defaults.max_items_per_run}; "
        f"weekly generation {'on' if gen.weekly_from_pressure_digest else 'off'}, "
        f"daily generation {'on' if gen.daily_from_risk_digest else 'off'}",
        f"  ownership: default owner {policy.ownership.default_owner}, {len(policy.ownership.overrides)} overrides"
        f"{', reassign on change' if policy.ownership.reassign_on_change else ''}",
        f"  lifecycle: on_clear {policy.lifecycle.on_clear} after {policy.lifecycle.clear_after_digests} digest(s), "
        f"max_accept_days {policy.lifecycle.max_accept_days}; {len(policy.alerts.escalation)} escalation step(s)",
    ]


def catalog_summary(policy: BacklogPolicy, root: Path) -> list[str]:
    """The catalog files the policy names, validated (file, document, key on the first problem)."""
    patterns = policy.ownership.catalog
    if not patterns:
        return []
    files = catalog_files(patterns, root)
    owners = load_catalog(patterns, root)
    return [f"  catalog: {len(files)} file(s) matching {', '.join(patterns)}; {len(owners)} service owner(s)"]


@policy_app.command("check")
def check(file: Path | None = typer.Argument(None, metavar="[FILE]", help="default: the configured policy"),
          as_json: bool = JsonOpt) -> None:
    """Validate a policy file: OK and a summary, or the error naming file and key (exit 6)."""
    settings = load_settings()
    path = file or settings.policy_path
    try:
        policy = load_policy(path)
        catalog = catalog_summary(policy, settings.root)
    except BacklogError as exc:
        if as_json:
            print_json({"ok": False, **exc.to_dict()})
        fail(exc)
    if as_json:
        print_json({"ok": True, "file": str(path), "policy": policy.model_dump(mode="json", by_alias=True)})
        return
    for line in [f"OK: {path}", *policy_summary(policy), *catalog]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
