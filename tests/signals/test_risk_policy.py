"""config/risk_policy.yml: the shipped file validates, and a bad one names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.router.errors import PolicyInvalid
from services.router.signals.risk_policy import RiskPolicy, load_risk_policy

REPO = Path(__file__).resolve().parents[2]


def test_shipped_file_is_valid_and_matches_the_documented_defaults() -> None:
    assert load_risk_policy(REPO / "config" / "risk_policy.yml") == RiskPolicy()


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("risk: {weights: {slo_breach_24h: -1}}", "risk.weights.slo_breach_24h", "greater than or equal to 0"),
    ("risk: {weights: {incident_open: {sev1: 40}}}", "risk.weights", "needs exactly the keys"),
    ("risk: {bands: {medium: 60, high: 50, critical: 75}}", "risk.bands", "bands must increase"),
    ("pressure: {weights: {incidents_30d: x}}", "pressure.weights.incidents_30d", "valid number"),
    ("pressure: {weight: {}}", "pressure.weight", "unknown key"),
    ("snapshots: {retention_days: 3}", "snapshots.retention_days", "greater than or equal to 8"),
    ("alertmanager: {severity_aliases: {p1: urgent}}", "alertmanager", "severity_aliases"),
    ("alertmanager: {service_labels: []}", "alertmanager.service_labels", "at least 1"),
])
def test_invalid_files_name_file_and_key(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = tmp_path / "risk_policy.yml"
    path.write_text(text)
    with pytest.raises(PolicyInvalid) as err:
        load_risk_policy(path)
    assert str(path) in err.value.message and expected in err.value.message
    assert key in err.value.details["keys"]


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="not found"):
        load_risk_policy(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("risk: [1, 2")
    with pytest.raises(PolicyInvalid, match="not valid YAML"):
        load_risk_policy(bad)
    bad.write_text("- a list")
    with pytest.raises(PolicyInvalid, match="mapping"):
        load_risk_policy(bad)


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "risk_policy.yml"
    path.write_text("snapshots: {retention_days: 30}\n")
    assert load_risk_policy(path).snapshots.retention_days == 30
    path.write_text("snapshots: {retention_days: 365}\n")  # another size: coarse mtimes cannot hide it
    assert load_risk_policy(path).snapshots.retention_days == 365
