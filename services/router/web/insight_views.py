"""What the trends, problems, signals and reports pages show, from action results — pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from services.router.domain.acceptance import hold, is_accepted, until_of
from services.router.domain.dedupe import week_of_key
from services.router.domain.transitions import is_overdue
from services.router.web.charts import Series, bar_chart, line_chart
from services.router.web.views import LINK_SCHEMES, days_overdue

WEEK_CHOICES = (4, 8, 12, 26, 52, 104)
SMALL_MULTIPLES = 6
SIGNAL_TIMES = ("started_at", "starts_at", "at", "detected_at", "created_at")
SIGNAL_TITLES = ("title", "alertname", "slo", "version", "cve")


def page_url(path: str, **query: Any) -> str:
    """``path?…`` with the non-empty values, in a stable order."""
    shown = {k: v for k, v in query.items() if v is not None and v != ""}
    return path + (f"?{urlencode(shown)}" if shown else "")


@dataclass(frozen=True, slots=True)
class TrendCharts:
    """The two main charts of ``/trends`` and the rows of the tables beside them."""

    flow: Markup  # opened vs closed
    levels: Markup  # open, overdue, P0 at week end
    rows: list[dict[str, Any]]


def trend_charts(rows: Sequence[dict[str, Any]], scope: str) -> TrendCharts:
    labels = [r["week"] for r in rows]
    flow = bar_chart("chart-flow", f"Items opened and closed per week, {scope}", labels, [
        Series("opened", "Opened", [r["opened"] for r in rows], "opened"),
        Series("closed", "Closed", [r["closed"] for r in rows], "closed")])
    levels = line_chart("chart-levels", f"Open, overdue and P0 items at each week's end, {scope}", labels, [
        Series("open_at_end", "Open", [r["open_at_end"] for r in rows], "open"),
        Series("overdue_at_end", "Overdue", [r["overdue_at_end"] for r in rows], "overdue"),
        Series("p0_open_at_end", "P0 open", [r["p0_open_at_end"] for r in rows], "p0")])
    return TrendCharts(flow, levels, list(rows))


def service_chart(service: str, rows: Sequence[dict[str, Any]], index: int) -> Markup:
    labels = [r["week"] for r in rows]
    return line_chart(f"chart-service-{index}", f"{service}: open and overdue items at each week's end", labels, [
        Series("open_at_end", "Open", [r["open_at_end"] for r in rows], "open"),
        Series("overdue_at_end", "Overdue", [r["overdue_at_end"] for r in rows], "overdue")], width=320, height=150)


def problem_rows(problems: Sequence[dict[str, Any]], items: Mapping[str, dict[str, Any]], env: str,
                 today: date) -> list[dict[str, Any]]:
    """Each problem with its folded items (as far as the page read them) and its links."""
    rows = []
    for p in problems:
        members = [items[i] for i in p["items"] if i in items]
        rows.append({
            **p, "count": len(p["items"]),
            "members": [{**m, "week": week_of_key(m["dedupe_key"]),
                         "late": is_overdue(m["status"], m["due_date"], today, hold(m.get("accepted"))),
                         "accepted_until": until_of(m) if is_accepted(m, today) else None} for m in members],
            "title": members[0]["title"] if members else f"{p['service']} / {p['category']}",
            "anchor": f"problem-{p['service']}-{p['category']}",
            "items_href": page_url("/items", env=env, service=p["service"], category=p["category"], active="true"),
            "late_days": days_overdue(p["oldest_due_date"], today) if p["overdue"] and p["oldest_due_date"] else 0,
        })
    return rows


def grouped_overdue(rows: Sequence[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """The dashboard's overdue rows, one per problem (env, service, category), in the API's order:
    a problem carried over for weeks shows once, as "3 weekly items, oldest due …"."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.get("env"), row["service"], row["category"]), []).append(row)
    out = []
    for (env, service, category), members in groups.items():
        first = members[0]  # the oldest due date (the list's order)
        newest = max(members, key=lambda r: r["id"])
        out.append({**newest, "due_date": first["due_date"], "days_overdue": days_overdue(first["due_date"], today),
                    "priority": min(r["priority"] for r in members), "count": len(members),
                    "ids": [r["id"] for r in members],
                    "problem_href": page_url("/problems", env=env, service=service) + f"#problem-{service}-{category}"})
    return out


def signal_rows(signals: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in signals:
        when = next((s[k] for k in SIGNAL_TIMES if s.get(k)), None)
        title = next((str(s[k]) for k in SIGNAL_TITLES if s.get(k)), s["id"])
        source = str(s.get("source") or "")
        out.append({**s, "when": when, "label": title, "state": s.get("status") or s.get("result") or "",
                    "level": s.get("severity") or (f"burn rate {s['burn_rate']:g}" if s.get("burn_rate") else ""),
                    "href": source if source.lower().startswith(LINK_SCHEMES) else None, "source_text": source})
    return out


def evidence_links(refs: Sequence[str], urls: Any) -> list[dict[str, str | None]]:
    """Evidence refs, each a link where the digest gave an http(s) URL for it (``meta.evidence_urls``)
    or where the ref is itself one; anything else (``javascript:…``) stays text."""
    known = urls if isinstance(urls, dict) else {}
    out: list[dict[str, str | None]] = []
    for ref in refs:
        given = known.get(ref)
        url = given if isinstance(given, str) else ref
        out.append({"text": ref, "href": url if url.lower().startswith(LINK_SCHEMES) else None})
    return out
