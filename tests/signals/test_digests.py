"""Digest files: DESIGN §6 schema, env sections kept, atomic writes, ISO week names, ``latest``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.router import files
from services.router.clock import FixedClock
from services.router.errors import Conflict, DigestMissing, StoreUnavailable
from services.router.generation.digest import load_platform_digest, load_risk_digest
from tests.signals.builders import deploy, followup, incident, slo_breach, vulnerability
from tests.signals.conftest import NOW, Call

SIGNAL_KEYS = {"risk_avg_7d", "risk_max_7d", "risk_delta_7d", "incidents_30d", "recurring_incidents_30d",
               "slo_breaches_7d", "overdue_followups", "open_critical_vulns", "failed_deploys_7d"}


def seed(call: Call) -> None:
    call("signals_tool", "ingest", signals=[
        incident("INC-1", severity="sev1", root_cause="db-pool"),
        incident("INC-0", severity="sev2", status="resolved", started_at="2026-11-10T10:00:00Z",
                 resolved_at="2026-11-10T11:00:00Z", root_cause="db-pool"),
        vulnerability("V-1"), vulnerability("V-2"), followup("FU-1"), followup("FU-2"), slo_breach(), deploy(),
        deploy("DEP-S", env="staging", service="auth"), incident("INC-S", env="staging", service="auth",
                                                                 severity="sev3"),
    ])


def read(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    return data


def test_platform_digest_schema(call: Call, root: Path) -> None:
    seed(call)
    out = call("architecture_pressure_tool", "digest", env="prod")
    assert out["path"] == "ops/reports/platform/2026-W48.json"  # relative to REPO_ROOT, never absolute
    digest = read(root / out["path"])
    assert set(digest) == {"schema", "week", "generated_at", "period", "envs"}
    assert digest["schema"] == "platform_priority_digest/v1" and digest["week"] == "2026-W48"
    assert digest["generated_at"].startswith("2026-11-26T12:00:00")
    assert digest["period"]["start"].startswith("2026-11-19T12:00:00")
    (row,) = digest["envs"]["prod"]["services"]
    assert row["service"] == "gateway" and row["band"] in {"low", "medium", "high", "critical"}
    assert set(row["signals"]) == SIGNAL_KEYS
    assert row["signals"]["open_critical_vulns"] == 2 and row["signals"]["recurring_incidents_30d"] == 1
    assert min(100.0, sum(row["parts"].values())) == pytest.approx(row["pressure_score"])
    assert {"kind": "incident", "ref": "INC-1", "title": "Checkout 5xx spike",
            "source": "https://inc.example/INC-1"} in row["evidence"]
    assert all(set(e) >= {"kind", "ref", "title"} for e in row["evidence"])
    model = load_platform_digest(root / out["path"])  # exactly what weekly generation reads
    assert model.envs["prod"].services[0].signals.open_critical_vulns == 2
    md = (root / out["md_path"]).read_text()
    assert md.startswith("# Platform priority digest — 2026-W48") and "| 1 | **gateway** |" in md
    assert "open_critical_vulns 20" in md, "the .md says why the service ranks there"


def test_one_env_run_keeps_the_other_envs(call: Call, clock: FixedClock, root: Path) -> None:
    seed(call)
    path = root / call("architecture_pressure_tool", "digest", env="prod")["path"]
    call("architecture_pressure_tool", "digest", env="staging")
    both = read(path)
    assert sorted(both["envs"]) == ["prod", "staging"]
    clock.advance(hours=2)
    call("signals_tool", "ingest", signals=[vulnerability("V-3")])
    out = call("architecture_pressure_tool", "digest", env="prod")
    assert out["kept_envs"] == ["staging"]
    again = read(path)
    assert again["envs"]["staging"] == both["envs"]["staging"]
    assert again["envs"]["prod"]["services"][0]["signals"]["open_critical_vulns"] == 3
    assert "## staging" in (root / out["md_path"]).read_text()


def test_digest_of_every_env_and_dry_run(call: Call, root: Path) -> None:
    seed(call)
    planned = call("architecture_pressure_tool", "digest", dry_run=True)
    assert planned["dry_run"] is True and sorted(planned["digest"]["envs"]) == ["prod", "staging"]
    assert not (root / "ops" / "reports" / "platform").exists()
    out = call("architecture_pressure_tool", "digest")
    assert sorted(read(root / out["path"])["envs"]) == ["prod", "staging"]


@pytest.mark.parametrize(("moment", "name"), [
    (datetime(2027, 1, 1, 6, tzinfo=UTC), "2026-W53"),
    (datetime(2026, 12, 28, 6, tzinfo=UTC), "2026-W53"),
    (datetime(2027, 1, 4, 6, tzinfo=UTC), "2027-W01"),
    (datetime(2025, 12, 29, 6, tzinfo=UTC), "2026-W01"),
])
def test_iso_week_names_at_year_ends(call: Call, clock: FixedClock, moment: datetime, name: str, root: Path) -> None:
    clock.set(moment)
    call("signals_tool", "ingest", signals=[deploy(at="2025-12-01T00:00:00Z")])
    out = call("architecture_pressure_tool", "digest", env="prod")
    assert (root / out["path"]).name == f"{name}.json" and read(root / out["path"])["week"] == name


def test_as_of_names_the_week_and_refuses_the_future(call: Call) -> None:
    seed(call)
    out = call("architecture_pressure_tool", "digest", env="prod", as_of="2026-11-16T06:00:00Z")
    assert Path(out["path"]).name == "2026-W47.json"
    with pytest.raises(Conflict) as err:  # well formed, but ahead of the clock: 409 (issue 23)
        call("architecture_pressure_tool", "digest", env="prod", as_of="2026-12-01T00:00:00Z")
    assert err.value.details["field"] == "as_of" and "in the future" in err.value.message


def test_latest_returns_the_newest_week(call: Call, clock: FixedClock) -> None:
    with pytest.raises(DigestMissing) as err:
        call("architecture_pressure_tool", "latest")
    assert err.value.message == "No platform digest found. Run architecture_pressure_tool.digest first."
    seed(call)
    clock.set(datetime(2027, 1, 4, 6, tzinfo=UTC))
    call("architecture_pressure_tool", "digest", env="prod", as_of="2026-12-31T06:00:00Z")  # 2026-W53
    call("architecture_pressure_tool", "digest", env="prod", as_of="2026-11-26T06:00:00Z")  # 2026-W48
    latest = call("architecture_pressure_tool", "latest")
    assert latest["week"] == "2026-W53" and latest["stale_digest"] is True
    call("architecture_pressure_tool", "digest", env="staging")
    assert call("architecture_pressure_tool", "latest")["week"] == "2027-W01"
    assert call("architecture_pressure_tool", "latest", env="prod")["week"] == "2026-W53"
    with pytest.raises(DigestMissing):
        call("architecture_pressure_tool", "latest", env="dev")


def test_writes_are_atomic(call: Call, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(call)
    path = root / call("architecture_pressure_tool", "digest", env="prod")["path"]
    before, inode = path.read_bytes(), path.stat().st_ino

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(StoreUnavailable, match="No space left"):
        call("architecture_pressure_tool", "digest", env="staging")
    assert path.read_bytes() == before, "a failed write leaves the old digest whole"
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name], "no temp file left behind"
    monkeypatch.undo()
    call("architecture_pressure_tool", "digest", env="staging")
    assert path.stat().st_ino != inode, "replaced by rename, never rewritten in place"
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".json") and p.name != path.name]


def test_risk_digest_file(call: Call, clock: FixedClock, root: Path) -> None:
    seed(call)
    for hours in (48, 24, 1):
        call("risk_history_tool", "snapshot", as_of=(NOW - timedelta(hours=hours)).isoformat())
    out = call("risk_history_tool", "digest", env="prod")
    assert out["path"] == "ops/reports/risk/2026-11-26.json" and out["md_path"] == "ops/reports/risk/2026-11-26.md"
    digest = read(root / out["path"])
    assert digest["schema"] == "risk_digest/v1" and digest["date"] == "2026-11-26"
    (row,) = digest["envs"]["prod"]["services"]
    # now: sev1 open 40 + 2 critical vulns 40 + 2 overdue 10 + SLO 10x2 + failed deploy 10 = 120 → 100
    assert (row["service"], row["score"], row["band"]) == ("gateway", 100.0, "critical")
    # 24 h ago (11-25 12:00): only the vulns (40) and the overdue follow-ups (FU due 11-20: 2 x 5) were open
    assert row["delta_24h"] == 50.0 and row["band_24h_ago"] == "high"
    assert digest["envs"]["prod"]["entered_high_or_critical"] == [
        {"service": "gateway", "band": "critical", "previous_band": "high", "score": 100.0}]
    assert row["parts"]["incidents"] == 40.0 and any(w.startswith("incidents 40") for w in row["why"])
    assert load_risk_digest(root / out["path"]).envs["prod"].services[0].delta_24h == 50.0
    call("risk_history_tool", "digest", env="staging")
    assert sorted(read(root / out["path"])["envs"]) == ["prod", "staging"]
    md = (root / out["md_path"]).read_text()
    assert "Entered high/critical" in md and "| 1 | **gateway** | 100 |" in md


def test_risk_digest_dry_run_writes_nothing(call: Call, root: Path) -> None:
    seed(call)
    out = call("risk_history_tool", "digest", dry_run=True)
    assert out["digest"]["envs"]["staging"]["services"][0]["service"] == "auth"
    assert not (root / out["path"]).exists()
