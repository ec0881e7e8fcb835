"""``backlog tracker sync|status|link|unlink``: thin over ``tracker_tool``.

``sync`` exits 1 when a tracker's run stopped (down, rate limited, a token refused: the reason is
printed), so a script notices; a run that parked items still exits 0 (they are shown, and
``status`` lists them with their reasons).
"""

from __future__ import annotations

from typing import Any

import typer

from services.router.cli.app import JsonOpt, app, console, run

tracker_app = typer.Typer(name="tracker", no_args_is_help=True,
                          help="Tracker sync: items in Redmine, GitHub, GitLab or Jira (config/trackers.yml).")
app.add_typer(tracker_app)

TOOL = "tracker_tool"


def say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@tracker_app.command("sync")
def sync_cmd(
    tracker: str | None = typer.Option(None, "--tracker", help="Only this tracker (default: every one)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be created, updated and pulled; send "
                                 "nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Create missing remote issues, push changes and comments, pull remote closes and reopens."""
    result = run("sync", {"tracker": tracker, "dry_run": dry_run}, as_json=as_json, render=render_sync, tool=TOOL)
    if any(t.get("stopped") for t in result.get("trackers", [])):
        raise typer.Exit(1)


def render_sync(result: dict[str, Any]) -> None:
    if result.get("skipped"):
        say(f"sync skipped: {result['reason']}")
        return
    for t in result["trackers"]:
        head = f"{t['tracker']} ({t['kind']})"
        if t.get("skipped"):
            say(f"{head}: skipped: {t['reason']}")
        elif t.get("dry_run"):
            render_plan(head, t)
        else:
            say(f"{head}: created {t['created']}, adopted {t['adopted']}, updated {t['updated']}, commented "
                f"{t['commented']}, pulled {t['pulled']}, conflicts {t['conflicts']} · pending {t['pending']}, "
                f"parked {t['parked']} · {t['requests']} requests")
            for a in t["items"]:
                say("  " + describe(a))
            if t.get("error"):
                say(f"  {'stopped' if t.get('stopped') else 'last error'}: {t['error']}")


def describe(a: dict[str, Any]) -> str:
    action, item = a["action"], a.get("id") or ""
    if action in ("created", "adopted"):
        return f"{action} {item} → {a['key']} {a['url']}"
    if action == "updated":
        return f"updated {item} ({a['key']}): {', '.join(a['fields'])}"
    if action == "pulled":
        return f"pulled {item} ({a['key']}): now {a['status']}"
    if action == "conflict":
        return f"conflict on {item} ({a['key']}): the {a['winner']}'s later change won; the other kept as a comment"
    if action in ("parked", "would_park"):
        return f"{action} {item}: {a['reason']}"
    if action == "retrying":
        return f"retrying {item} (attempt {a['attempts']}, next at {a['next_attempt_at']}): {a['error']}"
    if action == "commented":
        return f"commented on {a['key']} ({item})"
    return f"{action} {item} {a.get('project') or a.get('reason') or ''}".rstrip()


def render_plan(head: str, t: dict[str, Any]) -> None:
    say(f"[dry run] {head}: would create {len(t['would_create'])}, update {len(t['would_update'])}, comment on "
        f"{len(t['would_comment'])}, pull {len(t['would_pull'])} project(s); nothing was sent")
    for c in t["would_create"]:
        search = " (searching for its marker first: an earlier create may have landed)" if c["search_first"] else ""
        say(f"  create {c['id']} in {c['project']} ({c['priority']}, {c['status']}): {c['title']}{search}")
    for u in t["would_update"]:
        say(f"  update {u['id']} ({u['key']}): {', '.join(u['fields'])}")
    for c in t["would_comment"]:
        say(f"  comment on {c['key']} ({c['id']}): {c['comments']} new comment(s)")
    for p in t["would_pull"]:
        say(f"  pull {p['project']}: issues changed since {p['since']}")
    for key in t["scheduled_pulls"]:
        say(f"  pull {key} (a webhook asked)")
    for why, n in t["waiting"].items():
        say(f"  {n} item(s) {why}: left for later" if why == "backoff" else f"  {n} item(s) parked: see "
            f"`backlog tracker status`")


@tracker_app.command("status")
def status_cmd(tracker: str | None = typer.Option(None, "--tracker"), as_json: bool = JsonOpt) -> None:
    """Per tracker: linked, pending, parked (with reasons), last success, last error."""
    run("status", {"tracker": tracker}, as_json=as_json, render=render_status, tool=TOOL)


def render_status(result: dict[str, Any]) -> None:
    if not result["enabled"]:
        say(result["reason"])
        return
    for t in result["trackers"]:
        say(f"{t['tracker']} ({t['kind']}, {t['url']}): {t['linked']} linked, {t['pending']} pending, {t['parked']} "
            f"parked, {t['retrying']} retrying, {t['scheduled_pulls']} scheduled pull(s)")
        say(f"  last run {t['last_run_at'] or 'never'}; last success {t['last_success_at'] or 'never'}")
        if t["last_error"]:
            say(f"  last error {t['last_error_at']}: {t['last_error']}")
        if t["waiting_until"]:
            say(f"  waiting until {t['waiting_until']} (the tracker asked us to)")
        for w in t["parked_items"]:
            say(f"  parked {w['id']} ({w['kind']}, since {w['parked_at']}): {w['reason']}")
        for w in t["retrying_items"]:
            say(f"  retrying {w['id']} ({w['kind']}, {w['attempts']} attempt(s), next at {w['next_attempt_at']}): "
                f"{w['error']}")
        if t["requests"]:
            say("  requests: " + ", ".join(f"{k} {v}" for k, v in sorted(t["requests"].items())))


@tracker_app.command("link")
def link_cmd(
    item_id: str = typer.Argument(..., metavar="ID"),
    url: str = typer.Argument(..., metavar="URL", help="The remote issue's web address."),
    tracker: str | None = typer.Option(None, "--tracker", help="Default: the tracker whose issue URL it is."),
    as_json: bool = JsonOpt,
) -> None:
    """Adopt an existing remote issue for an item: the next sync makes it say what the item says."""
    run("link", {"id": item_id, "url": url, "tracker": tracker}, as_json=as_json, tool=TOOL,
        render=lambda r: say(f"linked {r['id']} to {r['tracker']} {r['key']} {r['url']}"
                             + (f" (was {r['replaced']})" if r["replaced"] else "")
                             + f"; the next sync {r['next_sync']}"))


@tracker_app.command("unlink")
def unlink_cmd(
    item_id: str = typer.Argument(..., metavar="ID"),
    recreate: bool = typer.Option(False, "--recreate", help="Let the next sync create a new issue for the item."),
    as_json: bool = JsonOpt,
) -> None:
    """Stop syncing an item with its remote issue (the issue itself is left as it is)."""
    run("unlink", {"id": item_id, "recreate": recreate}, as_json=as_json, tool=TOOL,
        render=lambda r: say(f"unlinked {r['id']} from {r['tracker']} {r['url'] or ''}; the next sync "
                             f"{r['next_sync']}"))
