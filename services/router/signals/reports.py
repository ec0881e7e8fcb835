"""The ``.md`` twins of the digests: tables for people, top services first, and why each ranks there.

Rendered from the digest JSON itself (never from the store), so the Markdown can never say
something the JSON does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.router.domain.text import signed

PRESSURE_COLUMNS = (
    ("risk_avg_7d", "risk avg 7d"), ("risk_max_7d", "risk max 7d"), ("risk_delta_7d", "Δ risk 7d"),
    ("incidents_30d", "incidents 30d"), ("recurring_incidents_30d", "recurring 30d"),
    ("slo_breaches_7d", "SLO breaches 7d"), ("overdue_followups", "overdue follow-ups"),
    ("open_critical_vulns", "open critical vulns"), ("failed_deploys_7d", "failed deploys 7d"),
)
BAND_MARK = {"critical": "🔴 critical", "high": "🟠 high", "medium": "🟡 medium", "low": "🟢 low"}
TOP_EXPLAINED = 10


def cell(value: Any) -> str:
    """Table-safe text: pipes and newlines would break a Markdown row."""
    text = "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def parts_text(parts: dict[str, float]) -> str:
    shown = sorted(((k, v) for k, v in parts.items() if v), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:g}" for k, v in shown) or "nothing open"


def render_pressure_md(digest: dict[str, Any]) -> str:
    out = [
        f"# Platform priority digest — {digest['week']}",
        "",
        f"Generated {digest['generated_at']}, covering {digest['period']['start']} → {digest['period']['end']}.",
        "Pressure is a weighted sum of the signals below, capped at 100 (weights: `config/risk_policy.yml`).",
        "Weekly backlog generation reads the JSON twin of this file.",
    ]
    for env, section in digest["envs"].items():
        services = section.get("services", [])
        out += ["", f"## {env}", ""]
        if not services:
            out.append("No services with signals in this env.")
            continue
        header = ["#", "service", "pressure", "band", *(label for _, label in PRESSURE_COLUMNS)]
        rows = [
            [str(i), f"**{cell(s['service'])}**", cell(s["pressure_score"]), BAND_MARK.get(s["band"], s["band"]),
             *(signed(s["signals"].get(key)) if key == "risk_delta_7d" else cell(s["signals"].get(key))
               for key, _ in PRESSURE_COLUMNS)]
            for i, s in enumerate(services, 1)
        ]
        out += table(header, rows)
        out += ["", "### Why they rank there", ""]
        for s in services[:TOP_EXPLAINED]:
            out.append(f"- **{cell(s['service'])}** — {cell(s['pressure_score'])} ({s['band']}): "
                       f"{parts_text(s.get('parts', {}))}")
            for ev in s.get("evidence", []):
                link = ev.get("source") or ev["ref"]
                out.append(f"  - {ev['kind']} `{cell(ev['ref'])}` {cell(ev.get('title', ''))} — {cell(link)}")
        if len(services) > TOP_EXPLAINED:
            out.append(f"- … and {len(services) - TOP_EXPLAINED} more services (see the table).")
    return "\n".join(out) + "\n"


def render_risk_md(digest: dict[str, Any]) -> str:
    out = [
        f"# Risk digest — {digest['date']}",
        "",
        f"Generated {digest['generated_at']}. Risk is a weighted sum of what is open now, capped at 100",
        "(weights and bands: `config/risk_policy.yml`); changes compare with the hourly snapshots.",
    ]
    for env, section in digest["envs"].items():
        services = section.get("services", [])
        out += ["", f"## {env}", ""]
        counts = section.get("counts", {})
        if counts:
            out.append(" · ".join(f"{band}: {counts.get(band, 0)}" for band in ("critical", "high", "medium", "low")))
            out.append("")
        entered = section.get("entered_high_or_critical", [])
        if entered:
            out.append("**Entered high/critical in the last 24 h:** " + ", ".join(
                f"{cell(e['service'])} ({e.get('previous_band') or 'new'} → {e['band']}, {cell(e['score'])})"
                for e in entered))
            out.append("")
        if not services:
            out.append("No services with signals in this env.")
            continue
        rows = [
            [str(i), f"**{cell(s['service'])}**", cell(s["score"]), BAND_MARK.get(s["band"], s["band"]),
             signed(s.get("delta_24h")), signed(s.get("delta_7d")), cell(parts_text(s.get("parts", {})))]
            for i, s in enumerate(services, 1)
        ]
        out += table(["#", "service", "risk", "band", "Δ 24h", "Δ 7d", "parts"], rows)
        explained = [s for s in services[:TOP_EXPLAINED] if s.get("why")]
        if explained:
            out += ["", "### Why", ""]
            out += [f"- **{cell(s['service'])}**: " + "; ".join(cell(w) for w in s["why"]) for s in explained]
    return "\n".join(out) + "\n"
