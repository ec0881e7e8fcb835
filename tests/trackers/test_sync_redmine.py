"""Tracker sync against the real Redmine (Debian's redmine 5.0; never skipped under CI=true):
the issue's acceptance through the ``backlog`` CLI as a user runs it, and the fault tests —
``kill -9`` of syncs, two syncs at once on Postgres, a deleted issue."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.router.clock import SystemClock
from services.router.sample.digest import write_sample_digest
from services.router.trackers.config import load_trackers
from tests.trackers.conftest import Harness, redmine_harness
from tests.trackers.redmine_support import RedmineServer
from tests.trackers.redmine_sync_support import (
    NAME,
    PRIORITY_MAP,
    backlog,
    cli_env,
    concurrent_run,
    kill9_run,
    remote_by_item,
    write_trackers,
)
from tests.trackers.sync_support import Bed

SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))


def test_acceptance_through_the_cli(redmine_server: RedmineServer, tmp_path: Path) -> None:
    """Generation creates items; `backlog tracker sync` creates exactly one Redmine issue per routed
    item with the mapped priority; a second sync creates and changes nothing; closing an issue in
    Redmine and syncing moves the item to done with an event by tracker:redmine-main; blocking an
    item in the backlog and syncing moves the Redmine issue to the mapped status."""
    project = redmine_server.new_project()
    trackers = write_trackers(tmp_path / "trackers.yml", redmine_server, project)
    env = cli_env(tmp_path, trackers, redmine_server)
    write_sample_digest(tmp_path / "reports", datetime.now(UTC))
    generated = backlog(env, "generate", "weekly", "--env", "prod", "--json")
    assert generated.returncode == 0, generated.stderr
    created = json.loads(generated.stdout)
    routed = {i["id"]: i for i in created["items"] if i["action"] == "create" and i["priority"] in PRIORITY_MAP}
    assert created["created"] == len(routed) >= 5

    first = backlog(env, "tracker", "sync")
    assert first.returncode == 0, first.stderr
    assert f"{NAME} (redmine): created {len(routed)}, adopted 0, updated 0" in first.stdout
    config = load_trackers(trackers)
    remote = remote_by_item(redmine_server, config, project)
    assert set(remote) == set(routed)  # one issue per routed item, nothing else
    for item_id, issues in remote.items():
        assert len(issues) == 1, item_id
        assert issues[0].priority == PRIORITY_MAP[routed[str(item_id)]["priority"]]
        assert issues[0].status == "New" and f"https://backlog.example.com/items/{item_id}" in issues[0].description

    second = backlog(env, "tracker", "sync", "--json")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert (again["created"], again["updated"], again["commented"], again["pulled"]) == (0, 0, 0, 0)
    assert remote_by_item(redmine_server, config, project) == remote  # not one issue changed

    closed, blocked = sorted(routed)[:2]
    redmine_server.set_status(remote[closed][0].key, "Closed")
    assert backlog(env, "status", blocked, "blocked").returncode == 0
    third = backlog(env, "tracker", "sync")
    assert third.returncode == 0, third.stderr
    shown = json.loads(backlog(env, "show", closed, "--json").stdout)
    assert shown["status"] == "done"
    assert shown["tracker"]["key"] == remote[closed][0].key and shown["tracker"]["sync"] == "in_sync"
    events = json.loads(backlog(env, "events", closed, "--json").stdout)["events"]
    assert (events[-1]["type"], events[-1]["actor"]) == ("status_changed", "tracker:redmine-main")
    assert remote[closed][0].url in events[-1]["message"]
    assert remote_by_item(redmine_server, config, project)[blocked][0].status == "Feedback"  # status_map.blocked

    status = backlog(env, "tracker", "status")
    assert status.returncode == 0 and f"{len(routed)} linked, 0 pending, 0 parked" in status.stdout
    dry = backlog(env, "tracker", "sync", "--dry-run")
    assert dry.returncode == 0 and "would create 0, update 0, comment on 0, pull 1 project(s)" in dry.stdout


def test_without_a_trackers_file_sync_is_off_and_says_so(tmp_path: Path, redmine_server: RedmineServer) -> None:
    env = cli_env(tmp_path, tmp_path / "trackers.yml", redmine_server)
    del env["BACKLOG_TRACKERS_PATH"]
    env["REPO_ROOT"] = str(tmp_path)  # no config/trackers.yml there
    done = backlog(env, "tracker", "sync")
    assert done.returncode == 0 and "tracker sync is off: no trackers file at config/trackers.yml" in done.stdout
    named = cli_env(tmp_path, tmp_path / "missing.yml", redmine_server)
    refused = backlog(named, "tracker", "sync")
    assert refused.returncode == 6 and "missing.yml" in refused.stderr  # a named file must exist


@pytest.fixture
def redmine(redmine_server: RedmineServer) -> Harness:
    return redmine_harness(redmine_server)


def test_a_deleted_issue_is_parked_with_its_reason(redmine: Harness, tmp_path: Path) -> None:
    bed = Bed(redmine, SystemClock(), backend="jsonl", directory=tmp_path / "backlog")
    try:
        item_id = bed.add("k1")
        bed.sync()
        redmine.delete_remotely(bed.link(item_id).remote_key or "")
        bed.add("k1", title="changed after the issue was deleted")
        result = bed.sync()
        assert result["newly_parked"] == 1 and result["error"] and "404" in result["error"]
        shown = bed.engine().links.work(bed.name)[0]
        assert shown.parked and "404 Not Found" in (shown.parked_reason or "")
        assert bed.sync()["newly_parked"] == 0  # not retried while nothing changed
    finally:
        bed.close()


def test_kill9_of_syncs_creates_no_duplicate_and_loses_no_change(redmine_server: RedmineServer,
                                                                 tmp_path: Path) -> None:
    print(f"seed={SEED}")
    figures = kill9_run(redmine_server, tmp_path, items=8, kills=8, seed=SEED)
    assert figures.kills >= 4 and figures.crash_points_hit >= 6, figures
    assert figures.misses() == {}, figures.notes[:10]


@pytest.mark.postgres
def test_two_syncs_at_once_on_postgres_create_one_issue_per_item(redmine_server: RedmineServer, tmp_path: Path,
                                                                  request: pytest.FixtureRequest) -> None:
    from tests.pg_support import fresh_database

    with fresh_database("bb_tracker_race") as dsn:
        figures = concurrent_run(redmine_server, tmp_path, dsn, items=6, rounds=4)
    assert figures.duplicates == 0 and figures.missing_issues == 0, figures
    assert figures.skipped >= 1  # the rounds that do not wait: the second process found the lock held
