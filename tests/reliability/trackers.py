"""``make reliability``'s tracker sync scenarios, at full counts (the pytest tier runs them smaller:
``tests/trackers/test_sync_redmine.py`` and ``tests/trackers/test_sync_engine.py``)."""

from __future__ import annotations

from pathlib import Path

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from tests.conftest import NOW
from tests.trackers.conftest import github_harness, gitlab_harness, jira_harness
from tests.trackers.sync_support import Bed

Row = tuple[str, str, float, float | None]
FAKES = {"github": github_harness, "gitlab": gitlab_harness, "jira": jira_harness}


def down_run(kind: str, *, items: int, down_syncs: int) -> dict[str, int]:
    """A tracker down across ``down_syncs`` runs while the backlog changes, then back: what is lost."""
    harness = FAKES[kind]()
    clock = FixedClock(NOW)
    bed = Bed(harness, clock)
    try:
        ids = [bed.add(f"k{i}") for i in range(items)]
        bed.sync()
        harness.faults.next(503, times=1_000_000)
        worst = 0
        for round_no in range(down_syncs):
            target = ids[round_no % items]
            bed.add(f"k{round_no % items}", title=f"renamed while down ({round_no})")
            bed.store.add_comment(target, f"comment while down {round_no}", actor="alice")
            bed.store.set_status(ids[(round_no + 1) % items], Status.BLOCKED, actor="alice")
            ids.append(bed.add(f"new{round_no}"))
            harness.faults.requests = 0
            bed.sync()
            worst = max(worst, harness.faults.requests)
            clock.advance(minutes=5)
        harness.faults._queue.clear()
        bed.sync()
        lost = 0
        for item_id in ids:
            record, issue = bed.get(item_id), bed.issue(item_id)
            lost += issue.title != record["title"] or issue.status.casefold() != harness.remote(
                record["status"]).casefold()
        comments = sum(1 for i in range(down_syncs)
                       if not any(f"comment while down {i}" in c for c in harness.comments(
                           bed.link(ids[i % items]).remote_key or "")))
        return {"lost": lost, "lost_comments": comments, "duplicates": bed.duplicates(),
                "requests_per_down_sync": worst}
    finally:
        bed.close()
        for adapter in harness.opened:
            adapter.close()


def scenarios(tmp: Path, full: bool, seed: int) -> list[Row]:
    from tests.pg_support import fresh_database
    from tests.trackers.redmine_support import RedmineServer, problem
    from tests.trackers.redmine_sync_support import concurrent_run, kill9_run

    rows: list[Row] = []
    for kind in sorted(FAKES):
        f = down_run(kind, items=20 if full else 5, down_syncs=24 if full else 3)
        scenario = f"{kind} (fake) down for {24 if full else 3} syncs, then back"
        rows += [(scenario, "changes lost", f["lost"], 0), (scenario, "comments lost", f["lost_comments"], 0),
                 (scenario, "duplicate remote issues", f["duplicates"], 0),
                 (scenario, "requests per sync while down", f["requests_per_down_sync"], 1)]
    reason = problem()
    if reason is not None:
        raise RuntimeError(f"Redmine: {reason}")
    for sub in ("redmine", "kill9", "race"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    server = RedmineServer(tmp / "redmine")
    try:
        k = kill9_run(server, tmp / "kill9", items=15 if full else 8, kills=60 if full else 8, seed=seed)
        scenario = f"Redmine: kill -9 of syncs ({k.kills} random, {k.crash_points_hit} crash points, {k.items} items)"
        rows += [(scenario, "duplicate remote issues", k.duplicates, 0), (scenario, "changes lost", k.lost_changes, 0),
                 (scenario, "comments lost", k.lost_comments, 0), (scenario, "items without an issue", k.missing_issues,
                                                                  0)]
        with fresh_database("bb_tracker_race") as dsn:
            c = concurrent_run(server, tmp / "race", dsn, items=10 if full else 6, rounds=10 if full else 4)
        scenario = f"Redmine: 2 syncs at once on Postgres ({c.rounds} rounds, {c.items} items)"
        rows += [(scenario, "duplicate remote issues", c.duplicates, 0),
                 (scenario, "items without an issue", c.missing_issues, 0),
                 (scenario, "runs that found the lock held", c.skipped, None)]
    finally:
        server.stop()
    return rows
