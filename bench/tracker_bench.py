"""Tracker sync against a real, throwaway Redmine (issue 22): creating N issues, and a quiet run.

Ours: the sync as ``backlog tracker sync`` and the ``tracker_sync`` job run it
(``trackers.service.sync``: read the trackers file, open the link store, pull, plan, create each
issue exactly once — intent stored, POST, link stored — then read its own changes back) over a
JSONL backlog of N owned items that all match the route. The floor: the same N POSTs, with the
same JSON bodies the adapter sends (:func:`floor_bodies`; ``tests/bench/test_tracker_bench.py``
keeps proving they are the same), from one ``httpx.Client`` in a sequential loop. Every round
gets its own fresh project (and ours a fresh copy of the backlog), so the sync always creates
and never finds; ours and the floor alternate (``interleaved``), both against the same server.

The quiet row is counted, not timed: after a round linked all N items, one more sync runs with a
transport that counts what goes over the wire; the goal is at most 3 requests per tracker.

Redmine is the tests' own harness (``tests/trackers/redmine_support.py``: Debian's ``redmine``
5.0 on sqlite under WEBrick, installed by ``ops/scripts/install_test_deps.sh bench``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import Report, Row, interleaved, ratio_row
from services.router.clock import SystemClock
from services.router.domain.models import ItemInput
from services.router.settings import Settings
from services.router.stores.base import UpsertRequest
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.trackers import build_adapter, marker, service
from services.router.trackers.config import TrackerConfig
from services.router.trackers.model import CURSOR_OVERLAP, TrackerAdapter, merge_labels
from services.router.trackers.plan import body_for

REPO = Path(__file__).resolve().parents[1]
NAME = "redmine-bench"
TOKEN_ENV = "BACKLOG_BENCH_REDMINE_API_KEY"
PUBLIC_URL = "https://backlog.example.com"
OWNER = "team-edge"
STATUS_MAP = {"open": "New", "in_progress": "In Progress", "blocked": "Feedback", "done": "Closed",
              "canceled": "Rejected"}
PRIORITY_MAP = {"P0": "Immediate", "P1": "Urgent", "P2": "High", "P3": "Normal"}
PRIORITIES = ("P0", "P1", "P2")
QUIET_GOAL_REQUESTS = 3


def trackers_file(url: str, project: str) -> dict[str, Any]:
    """A ``config/trackers.yml`` like the README's, pointed at the throwaway Redmine."""
    return {
        "trackers": {NAME: {"kind": "redmine", "url": url, "token_env": TOKEN_ENV, "project": project,
                            "status_map": STATUS_MAP, "priority_map": PRIORITY_MAP, "labels": ["backlog-bridge"],
                            "assignees": {OWNER: "alice"}}},
        "routes": [{"match": {"env": "prod", "priority": list(PRIORITIES)}, "tracker": NAME}],
    }


def seed_backlog(directory: Path, items: int) -> list[dict[str, Any]]:
    """N owned prod items, all routed to the tracker (one batch write); their records."""
    store = JsonlBacklogStore(directory)
    try:
        requests = [UpsertRequest(ItemInput.model_validate({
            "env": "prod", "service": f"svc{n % 97}", "category": "arch_review", "owner": OWNER,
            "title": f"Review svc{n % 97} architecture ({n})", "priority": PRIORITIES[n % len(PRIORITIES)],
            "description": f"Pressure is high on svc{n % 97}: recurring incidents, overdue follow-ups.",
            "dedupe_key": f"bench-trk-{n}"})) for n in range(items)]
        return [dict(r.item) for r in store.upsert_many(requests, actor="gen")]
    finally:
        store.close()


def floor_bodies(records: list[dict[str, Any]], config: TrackerConfig, *, priority_ids: Mapping[str, int],
                 user_ids: Mapping[str, int]) -> list[dict[str, Any]]:
    """The JSON bodies the Redmine adapter POSTs for these items (subject, description with the
    labels footer and the marker, priority and assignee ids), computed ahead of the floor's loop."""
    labels = merge_labels(config.labels, ())
    bodies = []
    for record in records:
        fields: dict[str, Any] = {"subject": record["title"], "description": marker.compose(
            body_for(record, PUBLIC_URL), str(record["id"]), labels)}
        name = config.priority_map.get(record["priority"])
        if name is not None:
            fields["priority_id"] = priority_ids[name.casefold()]
        login = config.assignees.get(record["owner"])
        if login is not None:
            fields["assigned_to_id"] = user_ids[login]
        bodies.append({"issue": fields})
    return bodies


class CountingTransport(httpx.BaseTransport):
    """Counts every request that reaches the wire (what the quiet row reports)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Round:
    """One round's fresh state: a project nobody used, and (for ours) a fresh backlog copy."""

    project: str
    directory: Path
    trackers: Path


@dataclass
class Bed:
    server: Any  # tests.trackers.redmine_support.RedmineServer
    work: Path
    seed: Path
    records: list[dict[str, Any]]
    rounds: list[Round] = field(default_factory=list)
    created: list[int] = field(default_factory=list)

    def fresh(self) -> Round:
        n = len(self.rounds)
        project = self.server.new_project()
        directory = self.work / f"round{n}" / "backlog"
        shutil.copytree(self.seed, directory)
        trackers = self.work / f"round{n}" / "trackers.yml"
        trackers.write_text(yaml.safe_dump(trackers_file(self.server.url, project), sort_keys=False),
                            encoding="utf-8")
        self.rounds.append(Round(project, directory, trackers))
        return self.rounds[-1]

    def settings(self, state: Round) -> Settings:
        return Settings(REPO_ROOT=REPO, BACKLOG_BACKEND="jsonl", BACKLOG_JSONL_DIR=state.directory,
                        BACKLOG_TRACKERS_PATH=state.trackers, BACKLOG_PUBLIC_URL=PUBLIC_URL)

    def sync(self, state: Round, adapter_for: Any = None) -> dict[str, Any]:
        """One ``backlog tracker sync`` of the round's backlog (in process: the same call)."""
        store = JsonlBacklogStore(state.directory)
        try:
            return service.sync(store, self.settings(state), SystemClock(), adapter_for=adapter_for)
        finally:
            store.close()


@contextmanager
def redmine(work: Path) -> Iterator[Any]:
    from tests.trackers import redmine_support

    reason = redmine_support.problem()
    if reason is not None:
        raise SystemExit(f"tracker bench: {reason}")
    server = redmine_support.RedmineServer(work)
    try:
        no_notifications(server)
        yield server
    finally:
        server.stop()


def no_notifications(server: Any) -> None:
    """No notification mail for issues: Redmine renders two per created issue (admin, alice) in
    its one process, for both sides alike — work neither side asked for, which only dilutes the
    ratio and triples the run. Redmine re-reads settings once their ``updated_on`` moves."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    db = sqlite3.connect(server.root / "db" / "redmine.sqlite3", timeout=30)
    try:
        with db:
            db.execute("DELETE FROM settings WHERE name = 'notified_events'")
            db.execute("INSERT INTO settings (name, value, updated_on) VALUES ('notified_events', ?, ?)",
                       ("--- []\n", now))
    finally:
        db.close()


def lookups(server: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Redmine's priority ids by casefolded name and alice's user id (the floor's body inputs)."""
    rows = server.admin.get("/enumerations/issue_priorities.json").json()["issue_priorities"]
    return {r["name"].casefold(): int(r["id"]) for r in rows}, {"alice": int(server.alice_id)}


def scratch_root() -> str | None:
    """Memory-backed when the machine has it: Redmine's sqlite commits then cost no disk flush, so
    the floor is Redmine's own work, and a noisy disk (other benchmarks) moves neither side."""
    return "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None


def run(report: Report, *, issues: int, repeat: int, wait_out_overlap: bool = False) -> None:
    with (tempfile.TemporaryDirectory(prefix="backlog_bench_trk_redmine_", dir=scratch_root()) as served,
          tempfile.TemporaryDirectory(prefix="backlog_bench_trk_") as tmp, redmine(Path(served)) as server):
        os.environ[TOKEN_ENV] = server.token  # what the trackers file's token_env names
        work = Path(tmp)
        records = seed_backlog(work / "seed", issues)
        bed = Bed(server, work, work / "seed", records)
        config = TrackerConfig.model_validate(trackers_file(server.url, "x")["trackers"][NAME])
        priority_ids, user_ids = lookups(server)
        bodies = floor_bodies(records, config, priority_ids=priority_ids, user_ids=user_ids)
        pending: list[Round] = []

        def setup() -> None:
            pending[:] = [bed.fresh()]

        def ours() -> None:
            result = bed.sync(pending[0])
            bed.created.append(int(result["created"]))

        def floor() -> None:
            project = pending[0].project
            with httpx.Client(base_url=server.url, headers={"X-Redmine-API-Key": server.token},
                              timeout=30) as client:
                for body in bodies:
                    client.post(f"/projects/{project}/issues.json", json=body).raise_for_status()

        ours_s, floor_s = interleaved(ours, floor, repeat=repeat, setup=setup)
        wrong = [c for c in bed.created if c != issues]
        report.add(ratio_row(f"tracker sync: create {issues} Redmine issues", ours_s, floor_s, goal_ratio=1.3,
                             note=f"created per run {bed.created}" if wrong else ""))
        last = next(r for r in reversed(bed.rounds) if (r.directory / "tracker_sync.jsonl").exists())
        report.add(quiet_row(bed, last, issues, wait_out_overlap=wait_out_overlap))


def quiet_row(bed: Bed, state: Round, issues: int, *, wait_out_overlap: bool) -> Row:
    """The requests one sync makes when all N items are linked and nothing changed.

    Right after the creating run, the pull re-lists every issue changed within ``CURSOR_OVERLAP``
    (2 min) of the cursor — the whole burst it just created (N/100 pages). ``wait_out_overlap``
    (full mode) measures the steady state the ``*/5`` cron job sees: a sync once the overlap has
    passed (it still lists the burst once), then the next one, which is the row's figure.
    """
    def counted() -> tuple[list[str], dict[str, Any]]:
        wire: list[CountingTransport] = []

        def adapter_for(name: str, config: TrackerConfig, observe: Any) -> TrackerAdapter:
            wire.append(CountingTransport(httpx.HTTPTransport()))
            return build_adapter(name, config, transport=wire[-1], observe=observe)

        result = bed.sync(state, adapter_for)
        return [r for c in wire for r in c.requests], result

    runs = [counted()]
    if wait_out_overlap:
        time.sleep(CURSOR_OVERLAP.total_seconds() + 5)
        runs += [counted(), counted()]
    sent, _ = runs[-1]
    busy = {k: r[k] for _, r in runs for k in ("created", "updated", "commented", "pulled") if r[k]}
    ok = len(sent) <= QUIET_GOAL_REQUESTS and not busy
    counts = "/".join(str(len(s)) for s, _ in runs)
    note = (f"requests per quiet run {counts} (right after; after the overlap; steady)" if wait_out_overlap
            else f"right after the creating run (within the cursor overlap): {'; '.join(sent)}")
    return Row(f"tracker sync, nothing to do, {issues} linked (requests)", float(len(sent)), None, "req",
               f"<= {QUIET_GOAL_REQUESTS} req", ok, note + (f"; did {busy}" if busy else ""))
