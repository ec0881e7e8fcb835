"""``config/trackers.yml``: every validation error names the file, the key and the expectation
(a ``PolicyInvalid``: CLI exit 6, HTTP 500), routes pick the first match, no file = sync off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.router.api.errors import status_for
from services.router.cli.app import exit_code_for
from services.router.errors import PolicyInvalid
from services.router.settings import Settings
from services.router.trackers import TrackerPermanent, load_trackers, trackers_config
from services.router.trackers.config import TrackersConfig

REPO = Path(__file__).resolve().parents[2]
REDMINE: dict[str, Any] = {
    "kind": "redmine", "url": "https://redmine.example.com", "token_env": "REDMINE_API_KEY", "project": "platform",
    "status_map": {"open": "New", "in_progress": "In Progress", "blocked": "Feedback", "done": "Closed",
                   "canceled": "Rejected"},
}
GITHUB: dict[str, Any] = {"kind": "github", "url": "https://api.github.com", "token_env": "GITHUB_TOKEN",
                          "project": "acme/platform"}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "trackers.yml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def refused(tmp_path: Path, data: Any) -> str:
    path = write(tmp_path, data)
    with pytest.raises(PolicyInvalid) as caught:
        load_trackers(path)
    assert exit_code_for(caught.value) == 6 and status_for(caught.value) == 500
    assert caught.value.message.startswith(f"{path}: ")
    return caught.value.message


def tracker(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_the_shipped_example_is_valid_and_there_is_no_trackers_yml() -> None:
    loaded = load_trackers(REPO / "config" / "trackers.example.yml")
    assert set(loaded.trackers) == {"redmine-main", "gh", "gitlab-main", "jira-cloud"}
    assert loaded.trackers["gh"].statuses["blocked"] == "open"  # type: ignore[index]
    assert not (REPO / "config" / "trackers.yml").exists()  # shipping it would turn sync on


@pytest.mark.parametrize(("data", "expected"), [
    ({"trackers": {}, "extra": 1}, "unknown key extra"),
    ({"trackers": {"r": tracker(REDMINE, tokens="x")}}, "unknown key trackers.r.tokens"),
    ({"trackers": {"R!": REDMINE}}, "trackers.R!.[key]: String should match pattern"),
    ({"trackers": {"r": tracker(REDMINE, kind="trac")}}, "trackers.r.kind: Input should be 'redmine', 'github'"),
    ({"trackers": {"r": tracker(REDMINE, url="ftp://x")}}, "trackers.r.url: must be an http(s) URL"),
    ({"trackers": {"r": tracker(REDMINE, url="https://u:pw@redmine.example.com")}},
     "trackers.r.url: must not hold credentials"),
    ({"trackers": {"r": tracker(REDMINE, url="https://redmine.example.com/?key=1")}},
     "trackers.r.url: must be a base URL without query"),
    ({"trackers": {"r": tracker(REDMINE, token_env="my-token")}}, "trackers.r.token_env: String should match"),
    ({"trackers": {"r": tracker(REDMINE, token_env=None)}}, "trackers.r.token_env: required key is missing"),
    ({"trackers": {"r": tracker(REDMINE, status_map=None)}}, "trackers.r.status_map: required for redmine"),
    ({"trackers": {"r": tracker(REDMINE, status_map={"open": "New", "done": "Closed"})}},
     "trackers.r.status_map: misses in_progress, blocked, canceled"),
    ({"trackers": {"r": tracker(REDMINE, status_map={**REDMINE["status_map"], "closed": "Closed"})}},
     "trackers.r.status_map.closed.[key]: Input should be 'open'"),
    ({"trackers": {"r": tracker(REDMINE, status_map={**REDMINE["status_map"], "done": "Feedback"})}},
     "trackers.r.status_map: blocked and done both map to 'Feedback'"),
    ({"trackers": {"g": tracker(GITHUB, status_map={"open": "open", "in_progress": "In Progress",
                                                    "blocked": "open", "done": "closed", "canceled": "closed"})}},
     "trackers.g.status_map: github issues are only open or closed"),
    ({"trackers": {"g": tracker(GITHUB, status_map={"open": "open", "in_progress": "open", "blocked": "closed",
                                                    "done": "closed", "canceled": "closed"})}},
     "{'blocked': 'closed'}"),
    ({"trackers": {"r": tracker(REDMINE, priority_map={"P5": "Low"})}}, "trackers.r.priority_map.P5.[key]"),
    ({"trackers": {"r": tracker(REDMINE, labels=["a,b"])}}, "trackers.r.labels.0: String should match"),
    ({"trackers": {"j": tracker(REDMINE, kind="jira", project="PLAT", labels=["two words"])}},
     "trackers.j.labels: Jira labels cannot contain spaces"),
    ({"trackers": {"r": tracker(REDMINE, assignees={"Team Edge": "alice"})}}, "trackers.r.assignees.Team Edge.[key]"),
    ({"trackers": {"r": tracker(REDMINE, webhook_secret_env="HOOK")}},
     "trackers.r.webhook_secret_env: Redmine sends no webhooks"),
    ({"trackers": {"g": tracker(GITHUB, issue_type="Bug")}}, "trackers.g.issue_type: is for redmine and jira"),
    ({"trackers": {"g": tracker(GITHUB, url="https://github.com")}},
     "trackers.g.url: GitHub's API is https://api.github.com"),
    ({"trackers": {"g": tracker(GITHUB, project="platform")}},
     "trackers.g.project: project 'platform' is not a GitHub repository"),
    ({"trackers": {"j": tracker(REDMINE, kind="jira", project="plat")}},
     "trackers.j.project: project 'plat' is not a Jira project key"),
    ({"trackers": {"r": REDMINE}, "routes": [{"tracker": "gh"}]},
     "routes.0.tracker: unknown tracker 'gh'; declared: r"),
    ({"trackers": {"g": GITHUB}, "routes": [{"tracker": "g", "project": "acme/{team}"}]},
     "routes.0.project: project 'acme/{team}': placeholders are {service}, {env} and {category} (got {team})"),
    ({"trackers": {"g": tracker(GITHUB, project=None)}, "routes": [{"tracker": "g"}]},
     "routes.0: tracker 'g' has no project"),
    ({"trackers": {"g": GITHUB}, "routes": [{"tracker": "g", "match": {"team": "edge"}}]},
     "unknown key routes.0.match.team"),
    ({"trackers": {"g": GITHUB}, "routes": [{"tracker": "g", "match": {"priority": ["P9"]}}]},
     "routes.0.match.priority.0: Input should be 'P0'"),
    ("trackers: [", "not valid YAML"),
    ("- a list", "expected a mapping at the top level"),
])
def test_each_validation_error_names_file_key_and_expectation(tmp_path: Path, data: Any, expected: str) -> None:
    assert expected in refused(tmp_path, data)


def test_no_file_at_the_default_path_means_sync_is_off_but_a_named_missing_file_is_an_error(tmp_path: Path) -> None:
    settings = Settings(REPO_ROOT=tmp_path)  # type: ignore[call-arg]
    assert trackers_config(settings, environ={}) is None
    with pytest.raises(PolicyInvalid, match="trackers file not found"):
        trackers_config(settings, environ={"BACKLOG_TRACKERS_PATH": "elsewhere.yml"})
    (tmp_path / "elsewhere.yml").write_text(yaml.safe_dump({"trackers": {"r": REDMINE}}), encoding="utf-8")
    loaded = trackers_config(settings, environ={"BACKLOG_TRACKERS_PATH": "elsewhere.yml"})  # relative to REPO_ROOT
    assert loaded is not None and list(loaded.trackers) == ["r"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "trackers.yml").write_text("trackers: {}\n", encoding="utf-8")
    assert trackers_config(settings, environ={}) == TrackersConfig()


def routes(*entries: dict[str, Any]) -> TrackersConfig:
    return TrackersConfig.model_validate({
        "trackers": {"redmine-main": REDMINE, "gh": tracker(GITHUB, project=None)}, "routes": list(entries)})


def item(**fields: Any) -> dict[str, Any]:
    return {"env": "prod", "service": "gateway", "category": "arch_review", "priority": "P1", "owner": "team-edge",
            "source": "weekly_pressure_digest", "tags": ["edge"], **fields}


def test_routes_first_match_wins_and_projects_expand() -> None:
    config = routes(
        {"match": {"env": "prod", "priority": ["P0", "P1", "P2"]}, "tracker": "redmine-main"},
        {"match": {"env": "staging", "service": ["gateway", "billing"]}, "tracker": "gh", "project": "acme/{service}"},
        {"match": {"tags": ["edge"], "category": "security"}, "tracker": "gh", "project": "acme/{env}-{category}"},
    )
    first = config.route_for(item())
    assert first is not None and (first.tracker, first.project) == ("redmine-main", "platform")
    second = config.route_for(item(env="staging", service="billing"))
    assert second is not None and (second.tracker, second.project) == ("gh", "acme/billing")
    third = config.route_for(item(env="staging", service="search", category="security"))
    assert third is not None and third.project == "acme/staging-security"
    assert config.route_for(item(priority="P3")) is None  # prod but P3, and no later route takes it
    assert config.route_for(item(env="staging", service="search", tags=[])) is None


def test_a_route_that_expands_to_an_invalid_project_is_a_per_item_config_problem() -> None:
    config = routes({"match": {}, "tracker": "gh", "project": "acme/{service}"})
    with pytest.raises(TrackerPermanent) as caught:
        config.route_for(item(service=""))
    assert caught.value.kind == "config"
    assert "routes.0.project: 'acme/{service}' expands to 'acme/'" in caught.value.reason


@pytest.mark.parametrize(("remote", "current", "closed", "expected"), [
    ("closed", "blocked", True, "done"),         # closed remotely → done
    ("closed", "canceled", True, "canceled"),    # already a closed status that maps there
    ("open", "blocked", False, "blocked"),       # GitHub shows open for every active status
    ("open", "done", False, "open"),             # reopened → open
])
def test_remote_status_back_to_a_backlog_status_on_open_closed_trackers(
        remote: str, current: str, closed: bool, expected: str) -> None:
    gh = TrackersConfig.model_validate({"trackers": {"gh": GITHUB}}).trackers["gh"]
    assert gh.backlog_status_for(remote, current, closed=closed) == expected


@pytest.mark.parametrize(("remote", "current", "closed", "expected"), [
    ("Closed", "in_progress", True, "done"),
    ("Rejected", "open", True, "canceled"),
    ("feedback", "open", False, "blocked"),      # names compare without case
    ("Resolved", "in_progress", False, "in_progress"),  # unmapped and open: stays
    ("Resolved", "done", False, "open"),         # unmapped and open, item closed: reopened
    ("Archived", "open", True, "done"),          # unmapped and closed: done
])
def test_remote_status_back_to_a_backlog_status_on_redmine(remote: str, current: str, closed: bool,
                                                           expected: str) -> None:
    redmine = TrackersConfig.model_validate({"trackers": {"r": REDMINE}}).trackers["r"]
    assert redmine.backlog_status_for(remote, current, closed=closed) == expected
