from __future__ import annotations

from pathlib import Path

import pytest

from services.router.errors import PolicyInvalid
from services.router.policy import BacklogPolicy, load_policy

REPO = Path(__file__).resolve().parents[1]


def test_committed_policy_has_runbook_defaults() -> None:
    policy = load_policy(REPO / "config" / "backlog_policy.yml")
    assert policy.defaults.retention_days == 180
    assert policy.defaults.max_items_per_run == 50
    assert policy.dedupe.key_prefix == "platform_backlog"
    assert policy.generation.weekly_from_pressure_digest is True
    assert policy.generation.daily_from_risk_digest is False
    assert policy.ownership.default_owner == "oncall"
    assert {name: (c.priority.value, c.due_days) for name, c in policy.categories.items()} == {
        "arch_review": ("P1", 14), "slo_hardening": ("P1", 14), "followup_debt": ("P2", 7),
        "security": ("P0", 7), "deploy_safety": ("P2", 21), "risk_reduction": ("P1", 7),
    }
    assert policy == BacklogPolicy()  # the file and the built-in defaults agree


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("")
    assert load_policy(path) == BacklogPolicy()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults: {retention_days: 0}", "defaults.retention_days: Input should be greater than or equal to 1"),
        ("defaults: {max_items_per_run: lots}", "defaults.max_items_per_run"),
        ("surprise: 1", "unknown key surprise"),
        ("defaults: {retention_dayz: 3}", "unknown key defaults.retention_dayz"),
        ("categories: {x: {priority: P9, due_days: 1, rules: [{signal: pressure_score, gte: 1}]}}",
         "categories.x.priority"),
        ("categories: {x: {priority: P1, due_days: -3, rules: [{signal: pressure_score, gte: 1}]}}",
         "categories.x.due_days"),
        ("categories: {x: {priority: P1, due_days: 3, rules: [{signal: nope, gte: 1}]}}",
         "unknown weekly signal 'nope'"),
        ("categories: {x: {priority: P1, due_days: 3, rules: [{signal: pressure_score}]}}",
         "exactly one operator"),
        ("categories: {x: {priority: P1, due_days: 3, rules: []}}", "categories.x.rules"),
        ("ownership: {default_owner: Not A Slug}", "ownership.default_owner"),
        ("ownership: {overrides: {gateway: 'Team Edge'}}", "ownership.overrides.gateway"),
        ("dedupe: {key_prefix: 'a:b'}", "dedupe.key_prefix"),
        ("generation: {weekly_from_pressure_digest: maybe}", "generation.weekly_from_pressure_digest"),
        ("- a list", "expected a mapping"),
        ("defaults: [", "not valid YAML"),
    ],
)
def test_invalid_policy_is_one_error_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    with pytest.raises(PolicyInvalid) as info:
        load_policy(path)
    assert info.value.message.startswith(f"{path}: ")
    assert expected in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="policy file not found"):
        load_policy(tmp_path / "nope.yml")


def test_owner_for() -> None:
    policy = BacklogPolicy.model_validate({"ownership": {"default_owner": "sre", "overrides": {"gateway": "edge"}}})
    assert policy.ownership.owner_for("gateway") == ("edge", "ownership.overrides[gateway]")
    assert policy.ownership.owner_for("billing") == ("sre", "ownership.default_owner")
