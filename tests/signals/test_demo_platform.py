"""The synthetic demo platform: deterministic, clearly demo data, big enough, valid, and the pipeline runs."""

from __future__ import annotations

from pathlib import Path

import orjson

from services.router.clock import FixedClock
from services.router.demo_history import backlog_is_empty, replay_past_weeks
from services.router.demo_platform import ENVS, SERVICES, demo_signals, ingest_demo_signals, run_platform_pipeline
from services.router.domain.queries import ItemQuery
from services.router.generation.digest import load_platform_digest, load_risk_digest
from services.router.runtime import Runtime
from services.router.signals.models import validate_batch
from tests.signals.conftest import NOW


def test_generator_is_deterministic_valid_and_marked_as_demo() -> None:
    first = demo_signals(NOW)
    assert first == demo_signals(NOW)
    assert first != demo_signals(NOW, seed=7)
    accepted, rejected = validate_batch(first)
    assert rejected == [], rejected[:3]
    assert all(s.id.startswith("DEMO-") and s.source.startswith("https://demo.invalid/") for s in accepted)
    for env in ("prod", "staging"):
        services = {s.service for s in accepted if s.env == env}
        assert len(services) >= 15 and services <= set(SERVICES)
    span = max(s.occurred_at for s in accepted) - min(s.occurred_at for s in accepted)
    assert span.days >= 28, "several weeks of history"
    assert {s.kind_name for s in accepted} == {"incident", "alert", "slo_breach", "followup", "deploy",
                                               "vulnerability"}


def test_pipeline_produces_both_digests(runtime: Runtime, clock: FixedClock, root: Path) -> None:
    summary = run_platform_pipeline(runtime, hours=24)
    assert summary["demo_data"] is True and summary["signals"]["rejected"] == 0
    assert summary["snapshots_written"] > 0
    risk = root / "ops" / "reports" / "risk" / "2026-11-26.json"
    platform = root / "ops" / "reports" / "platform" / "2026-W48.json"
    assert (summary["risk_digest"], summary["platform_digest"]) == (str(risk.relative_to(root)),
                                                                 str(platform.relative_to(root)))
    for path in (risk, platform, risk.with_suffix(".md"), platform.with_suffix(".md")):
        assert path.stat().st_size > 0
    assert load_risk_digest(risk).envs["prod"].services
    assert load_platform_digest(platform).week == "2026-W48"
    digest = orjson.loads(platform.read_bytes())
    assert sorted(digest["envs"]) == ["prod", "staging"]
    assert len(digest["envs"]["prod"]["services"]) == len(SERVICES)
    top = digest["envs"]["prod"]["services"][0]
    assert top["pressure_score"] >= digest["envs"]["prod"]["services"][-1]["pressure_score"]
    again = run_platform_pipeline(runtime, hours=24)
    assert again["signals"]["unchanged"] == summary["signals"]["accepted"], "re-running is harmless"


def test_replayed_weeks_give_the_first_dashboard_a_history(runtime: Runtime, clock: FixedClock) -> None:
    ingest_demo_signals(runtime)
    weeks = replay_past_weeks(runtime, clock, envs=ENVS, weeks=3)
    assert [w["week"] for w in weeks] == ["2026-W45", "2026-W46", "2026-W47"]
    assert all(w["created"] > 0 for w in weeks)
    assert clock.now() == NOW, "the clock is back where it started"
    items = runtime.store.list(ItemQuery(limit=500)).items
    assert {i["status"] for i in items} >= {"open", "in_progress", "done"}
    assert max(i["meta"].get("weeks_open", 1) for i in items) == 3, "items left open carry over"
    assert runtime.store.dashboard("prod")["overdue_count"] > 0
    assert any(i["owner"].startswith("team-") for i in items)
    owned = next(i for i in items if i["owner"].startswith("team-"))
    assert "owner_changed" in [e["type"] for e in runtime.store.events(owned["id"])]
    assert max(i["created_at"] for i in items) < "2026-11-24", "generated on the replayed Mondays"
    assert not backlog_is_empty(runtime, ENVS)
