"""How a candidate's item is worded: category titles, rule texts, trigger lines, evidence lines.

Kept apart from the rules and the ranking so the words a person reads on an item can change
without touching what decides which items exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.router.generation.digest import Evidence
from services.router.policy import Rule

CATEGORY_TITLES = {
    "arch_review": "Architecture review",
    "slo_hardening": "SLO hardening",
    "followup_debt": "Follow-up debt",
    "security": "Security",
    "deploy_safety": "Deploy safety",
    "risk_reduction": "Risk reduction",
}
# Evidence that speaks to a signal; a category triggered by these shows those first.
SIGNAL_EVIDENCE = {
    "incidents_30d": ("incident",), "recurring_incidents_30d": ("incident",),
    "slo_breaches_7d": ("slo_breach",), "overdue_followups": ("followup",),
    "open_critical_vulns": ("vulnerability",), "failed_deploys_7d": ("deploy",),
}
SIGNAL_KINDS = {signal: frozenset(kinds) for signal, kinds in SIGNAL_EVIDENCE.items()}
NO_KINDS: frozenset[str] = frozenset()
SIGNAL_LABELS = {
    "risk_avg_7d": "risk avg 7d", "risk_max_7d": "risk max 7d", "risk_delta_7d": "Δ risk 7d",
    "incidents_30d": "incidents 30d", "recurring_incidents_30d": "recurring incidents 30d",
    "slo_breaches_7d": "SLO breaches 7d", "overdue_followups": "overdue follow-ups",
    "open_critical_vulns": "open critical vulns", "failed_deploys_7d": "failed deploys 7d",
}
SYMBOLS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<", "eq": "=", "in": "in"}
MAX_EVIDENCE_REFS = 20
MAX_EVIDENCE_LINES = 10


# Plain slots (hashable as a frozen one): a run makes one per rule that holds, four times
# cheaper than a frozen dataclass. Nothing changes one once it is made (``RunRule`` shares them).
@dataclass(slots=True, unsafe_hash=True)
class Trigger:
    """A rule that held, with the value that made it hold; ``text`` is worked out when not given."""

    signal: str
    value: Any
    rule: str
    text: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", f"{self.signal} {fmt(self.value)} {self.rule.split(' ', 1)[1]}")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def rule_text(rule: Rule) -> str:
    return f"{rule.signal} {SYMBOLS[rule.operator]} {fmt(rule.threshold)}"


def category_title(name: str) -> str:
    return CATEGORY_TITLES.get(name) or name.replace("_", " ").replace("-", " ").capitalize()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def evidence_lines(evidence: Sequence[Evidence]) -> list[str]:
    """The "Evidence:" section of a description: the first lines, and how many more there are."""
    lines = ["Evidence:"]
    append = lines.append
    for e in evidence[:MAX_EVIDENCE_LINES] if len(evidence) > MAX_EVIDENCE_LINES else evidence:
        title, source = e.title, e.source
        if source:
            append(f"- {e.kind} {e.ref} — {title} ({source})" if title else f"- {e.kind} {e.ref} ({source})")
        else:
            append(f"- {e.kind} {e.ref} — {title}" if title else f"- {e.kind} {e.ref}")
    if len(evidence) > MAX_EVIDENCE_LINES:
        lines.append(f"- … and {len(evidence) - MAX_EVIDENCE_LINES} more in the digest")
    return lines
