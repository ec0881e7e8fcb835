"""History on top of ``seed``: weekly items of one problem over three weeks, signals, and digests
— one of them hostile — for the trends, problems, signals and reports pages.

The gateway/security problem has three active weekly items (2026-W46…W48), all overdue, the
oldest due 2026-11-16; a fourth item (W45) was done in W46. The platform digest's ``.md`` carries HTML,
``javascript:`` links and an image: the report page must show all of it inert.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.runtime import Runtime
from tests.conftest import NOW
from tests.factories import item
from tests.generation.builders import platform, risk, risk_svc, svc, write_json

HOSTILE_MD = """# Platform priority digest — 2026-W48

<script>document.title = "pwned"</script>
<img src="x" onerror="document.title='pwned'">
[click me](javascript:document.title='pwned') [data](data:text/html,<b>x</b>) [fine](https://runbooks.example/gw)
<iframe src="https://evil.example/"></iframe>

## prod

| # | service | pressure |
| --- | --- | --- |
| 1 | **gateway** | 78.5 |
| 2 | **payments** | 61 |

### Why they rank there

- **gateway** — 78.5 (high): <b onmouseover="alert(1)">incidents</b>
"""
SIGNALS = [
    {"kind": "incident", "id": "INC-123", "env": "prod", "service": "gateway", "source": "https://inc.example/INC-123",
     "title": "5xx spike on checkout", "severity": "sev2", "status": "open", "started_at": "2026-11-25T06:00:00Z"},
    {"kind": "alert", "id": "fp-1", "env": "prod", "service": "payments", "source": "javascript:alert(1)",
     "alertname": "HighLatency", "severity": "warning", "status": "firing", "starts_at": "2026-11-26T08:00:00Z"},
    {"kind": "deploy", "id": "dep-9", "env": "staging", "service": "auth", "source": "CHG-9", "result": "failed",
     "title": "auth 1.2.3", "version": "1.2.3", "at": "2026-11-24T10:00:00Z"},
]


def seed_history(rt: Runtime, reports_dir: Path) -> dict[str, str]:
    """Returns the ids of the weekly gateway/security items by week."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    ids: dict[str, str] = {}
    for week, monday, due in (("2026-W45", date(2026, 11, 2), date(2026, 11, 9)),
                              ("2026-W46", date(2026, 11, 9), date(2026, 11, 16)),
                              ("2026-W47", date(2026, 11, 16), date(2026, 11, 23)),
                              ("2026-W48", date(2026, 11, 23), date(2026, 11, 25))):
        clock.set(datetime(monday.year, monday.month, monday.day, 6, 20, tzinfo=UTC))
        record = rt.store.upsert(item(f"platform_backlog:{week}:prod:gateway:security", service="gateway",
                                      category="security", title="Security: gateway (prod) — open_critical_vulns 1 ≥ 1",
                                      priority="P0", due_date=due, source="weekly_pressure_digest",
                                      evidence_refs=["CVE-2026-1234", "INC-123"],
                                      meta={"evidence_urls": {"CVE-2026-1234": "https://cve.example/CVE-2026-1234",
                                                              "INC-123": "javascript:alert(1)"}}),
                                 actor="scheduler", fallback_owner="team-edge").item
        ids[week] = record["id"]
    clock.set(datetime(2026, 11, 10, 9, tzinfo=UTC))
    rt.store.set_status(ids["2026-W45"], Status.DONE, actor="team-edge", message="patched")
    clock.set(NOW)
    rt.execute("admin", "signals_tool", "ingest", {"signals": SIGNALS})
    write_json(reports_dir / "platform" / "2026-W48.json", platform("2026-W48", {"prod": [
        svc("gateway", 78.5, "high", open_critical_vulns=1), svc("payments", 61.0, "high")]}))
    (reports_dir / "platform" / "2026-W48.md").write_text(HOSTILE_MD, encoding="utf-8")
    write_json(reports_dir / "platform" / "2026-W47.json", platform("2026-W47", {"prod": [svc("gateway", 70.0)]}))
    write_json(reports_dir / "platform" / "2026-W49.json", platform("2026-W49", {"prod": []}))  # after the clock
    write_json(reports_dir / "risk" / "2026-11-26.json",
               risk("2026-11-26", {"prod": [risk_svc("gateway", 80, "critical")]}))
    (reports_dir / "risk" / "2026-11-26.md").write_text("# Risk digest — 2026-11-26\n\n## prod\n\n- **gateway**: 80\n",
                                                        encoding="utf-8")
    return ids
