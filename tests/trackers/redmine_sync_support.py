"""Sync against the real Redmine from other processes: the ``backlog`` CLI as a user runs it, and
forked sync processes that are killed (``kill -9``) or run side by side.

Every figure is a count whose goal is 0 (duplicates, lost changes), so the pytest tier asserts
them and ``make reliability`` prints them.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from services.router import files
from services.router.domain.enums import Status
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.tracker_links import TrackerLinkStore
from services.router.stores.tracker_links_jsonl import JsonlLinkStore
from services.router.trackers import build_adapter
from services.router.trackers.config import TrackersConfig, load_trackers
from services.router.trackers.engine import SyncEngine, load_items
from services.router.trackers.model import Cursor, RemoteIssue
from tests.factories import item
from tests.trackers.redmine_support import RedmineServer

REPO = Path(__file__).resolve().parents[2]
BACKLOG = str(REPO / ".venv" / "bin" / "backlog")
NAME = "redmine-main"
TOKEN_ENV = "REDMINE_API_KEY"
STATUS_MAP = {"open": "New", "in_progress": "In Progress", "blocked": "Feedback", "done": "Closed",
              "canceled": "Rejected"}
PRIORITY_MAP = {"P0": "Immediate", "P1": "Urgent", "P2": "High", "P3": "Normal"}
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CRASH_POINTS = ("tracker:intent_stored", "tracker:after_remote_create", "tracker:link_stored",
                "tracker:after_remote_update", "tracker:after_remote_comment", "tracker:cursor_stored",
                "tracker:pull_applied")


def write_trackers(path: Path, server: RedmineServer, project: str) -> Path:
    """The issue's own example, pointed at the throwaway Redmine."""
    path.write_text(yaml.safe_dump({
        "trackers": {NAME: {"kind": "redmine", "url": server.url, "token_env": TOKEN_ENV, "project": project,
                            "status_map": STATUS_MAP, "priority_map": PRIORITY_MAP, "labels": ["backlog-bridge"]}},
        "routes": [{"match": {"env": "prod", "priority": ["P0", "P1", "P2"]}, "tracker": NAME}],
    }, sort_keys=False), encoding="utf-8")
    return path


def cli_env(workdir: Path, trackers: Path, server: RedmineServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_") and k not in ("POSTGRES_DSN",)}
    env.update(REPO_ROOT=str(REPO), BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=str(workdir / "backlog"),
               BACKLOG_REPORTS_DIR=str(workdir / "reports"), BACKLOG_STATE_DIR=str(workdir / "state"),
               BACKLOG_SIGNALS_DIR=str(workdir / "signals"), BACKLOG_RISK_DIR=str(workdir / "risk"),
               BACKLOG_TRACKERS_PATH=str(trackers), BACKLOG_PUBLIC_URL="https://backlog.example.com",
               **{TOKEN_ENV: server.token}, **extra)
    return env


def backlog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BACKLOG, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)


def remote_by_item(server: RedmineServer, config: TrackersConfig, project: str) -> dict[str | None, list[RemoteIssue]]:
    """Every issue of the project (closed ones too), by the item its marker names."""
    adapter = build_adapter(NAME, config.trackers[NAME], environ={TOKEN_ENV: server.token})
    try:
        cursor, out = Cursor.start(EPOCH), defaultdict(list)
        while True:
            page = adapter.list_changed_since(project, cursor)
            for issue in page.issues:
                out[issue.item_id].append(issue)
            cursor = page.cursor
            if not page.more:
                return dict(out)
    finally:
        adapter.close()


# -- processes that sync -------------------------------------------------------------------------
def engine(store: BacklogStore, links: TrackerLinkStore, config: TrackersConfig, token: str) -> SyncEngine:
    def adapter_for(name: str, cfg: Any, observe: Any) -> Any:
        return build_adapter(name, cfg, environ={TOKEN_ENV: token}, observe=observe)

    return SyncEngine(store, links, config, store.clock, adapter_for=adapter_for)


def sync_child(directory: str, trackers: str, token: str, crash_at: str | None, started: Any) -> None:
    """A forked process running one sync (killed by its parent, or by itself at ``crash_at``)."""
    if crash_at is not None:
        def crash(name: str) -> None:
            if name == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)

        files.crash_hook = crash
    store = JsonlBacklogStore(Path(directory))
    links = JsonlLinkStore(Path(directory), store)
    started.set()
    engine(store, links, load_trackers(Path(trackers)), token).sync(wait_seconds=30)
    os._exit(0)


@dataclass
class KillFigures:
    kills: int = 0
    crash_points_hit: int = 0
    items: int = 0
    duplicates: int = 0
    lost_changes: int = 0
    lost_comments: int = 0
    missing_issues: int = 0
    notes: list[str] = field(default_factory=list)

    def misses(self) -> dict[str, int]:
        return {k: v for k, v in (("duplicates", self.duplicates), ("lost_changes", self.lost_changes),
                                  ("lost_comments", self.lost_comments), ("missing_issues", self.missing_issues))
                if v}


def kill9_run(server: RedmineServer, workdir: Path, *, items: int, kills: int, seed: int) -> KillFigures:
    """Syncs killed at random times and at each named crash point, the backlog changing between
    them; then one clean sync, and every item compared with its Redmine issue."""
    rng = random.Random(seed)
    project = server.new_project()
    trackers = write_trackers(workdir / "trackers.yml", server, project)
    config = load_trackers(trackers)
    directory = workdir / "backlog"
    store = JsonlBacklogStore(directory)
    ids = [str(store.upsert(item(f"kill-{i}", priority=rng.choice(["P0", "P1", "P2"])), actor="gen").item["id"])
           for i in range(items)]
    links = JsonlLinkStore(directory, store)
    comments: dict[str, list[str]] = defaultdict(list)
    figures = KillFigures()
    ctx = multiprocessing.get_context("fork")
    plan = [None] * kills + list(CRASH_POINTS)
    durations: list[float] = []
    for round_no, point in enumerate(plan):
        # What happens while syncs come and go: a new item, a rename, a status move, a comment in
        # the backlog, and (from the second round on) an issue closed in Redmine by a person.
        ids.append(str(store.upsert(item(f"kill-{len(ids)}", priority="P1"), actor="gen").item["id"]))
        renamed, moved, commented, closed = rng.sample(ids[:-1], 4)
        store.upsert(item(f"kill-{ids.index(renamed)}", title=f"renamed in round {round_no}"), actor="alice")
        current = store.get(moved)["status"]  # type: ignore[index]
        store.set_status(moved, Status.OPEN if current in ("done", "canceled") else
                         Status(rng.choice(["in_progress", "blocked", "done"])), actor="alice")
        text = f"comment {round_no} on {commented}"
        store.add_comment(commented, text, actor="alice")
        comments[commented].append(text)
        link = links.get_link(closed)
        if link is not None and link.remote_key and store.get(closed)["status"] not in ("done", "canceled"):  # type: ignore[index]
            server.set_status(link.remote_key, "Closed")
        started = ctx.Event()
        child = ctx.Process(target=sync_child, args=(str(directory), str(trackers), server.token, point, started))
        child.start()
        started.wait(30)
        began = time.monotonic()
        if point is None:  # somewhere within a run: runs that finished tell how long one takes
            time.sleep(rng.uniform(0.0, 0.9 * min(durations, default=0.5)))
            if child.is_alive():
                os.kill(child.pid or 0, signal.SIGKILL)
                figures.kills += 1
        child.join(60)
        if child.exitcode == 0:
            durations.append(time.monotonic() - began)
        if point is not None and child.exitcode == -signal.SIGKILL:
            figures.crash_points_hit += 1
    links.close()
    store.close()
    final = JsonlBacklogStore(directory)
    links = JsonlLinkStore(directory, final)
    result = engine(final, links, config, server.token).sync(wait_seconds=30)["trackers"][0]
    if result.get("error"):
        figures.notes.append(f"final sync: {result['error']}")
    remote = remote_by_item(server, config, project)
    figures.items = len(ids)
    for item_id, record in load_items(final).items():
        issues = remote.get(item_id, [])
        figures.duplicates += max(0, len(issues) - 1)
        link = links.get_link(item_id)
        if not issues:  # an item closed before any sync reached it is rightly never created
            figures.missing_issues += 1 if link is not None or record["status"] not in ("done", "canceled") else 0
            continue
        issue = next((i for i in issues if link is not None and i.key == link.remote_key), issues[0])
        if issue.title != record["title"] or issue.status != STATUS_MAP[record["status"]]:
            figures.lost_changes += 1
            figures.notes.append(f"{item_id}: Redmine says {issue.title!r}/{issue.status}, the backlog "
                                 f"{record['title']!r}/{record['status']}")
        sent = server.admin.get(f"/issues/{issue.key}.json", params={"include": "journals"}).json()["issue"]
        notes = " ".join(j.get("notes") or "" for j in sent.get("journals", []))
        figures.lost_comments += sum(1 for text in comments[item_id] if text not in notes)
    links.close()
    final.close()
    return figures


@dataclass
class ConcurrencyFigures:
    rounds: int = 0
    items: int = 0
    duplicates: int = 0
    skipped: int = 0
    missing_issues: int = 0


def concurrent_child(dsn: str, trackers: str, token: str, barrier: Any, results: Any, wait_seconds: float) -> None:
    from services.router.stores.postgres import PostgresBacklogStore
    from services.router.stores.tracker_links_postgres import PostgresLinkStore

    store = PostgresBacklogStore(dsn)
    links = PostgresLinkStore(dsn)
    barrier.wait(30)
    result = engine(store, links, load_trackers(Path(trackers)), token).sync(wait_seconds=wait_seconds)
    results.put(result["trackers"][0])
    results.close()
    results.join_thread()  # put() hands the data to a feeder thread: let it finish before exiting
    os._exit(0)


def concurrent_run(server: RedmineServer, workdir: Path, dsn: str, *, items: int, rounds: int) -> ConcurrencyFigures:
    """Two sync processes started at the same instant on one Postgres, over new items each round."""
    from services.router.stores.postgres import PostgresBacklogStore

    project = server.new_project()
    trackers = write_trackers(workdir / "trackers.yml", server, project)
    config = load_trackers(trackers)
    store = PostgresBacklogStore(dsn)
    figures = ConcurrencyFigures(rounds=rounds)
    ctx = multiprocessing.get_context("spawn")  # the parent's connection pool runs threads: no fork
    for round_no in range(rounds):
        for i in range(items):
            store.upsert(item(f"race-{round_no}-{i}", priority="P1"), actor="gen")
        figures.items += items
        barrier, results = ctx.Barrier(2), ctx.Queue()
        wait = 0.0 if round_no % 2 == 0 else 30.0  # skip when busy, then wait for the lock
        children = [ctx.Process(target=concurrent_child, args=(dsn, str(trackers), server.token, barrier, results,
                                                                wait)) for _ in range(2)]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=120) for _ in children]
        for child in children:
            child.join(30)
        figures.skipped += sum(1 for o in outcomes if o.get("skipped"))
    remote = remote_by_item(server, config, project)
    for record in load_items(store).values():
        issues = remote.get(str(record["id"]), [])
        figures.duplicates += max(0, len(issues) - 1)
        figures.missing_issues += 0 if issues else 1
    store.close()
    return figures
