"""Escalation of overdue work: ``alerts.escalation`` steps, each fired once per item — pure, no I/O.

A step is ``{after_days_overdue: N, notify: TARGET}`` or ``{after_days_overdue: N, page: TARGET}``,
optionally limited to ``priorities``; ``notify: owner`` means the item's own owner. An item is
``d`` days overdue on the ``d``-th day after the last day it was not (its due date, or the last
day an acceptance held it: ``domain.acceptance.hold``); a step fires for it once ``d`` reaches
``after_days_overdue`` — on the next run after that day if the job did not run on it — and never
again for that item. Only what the overdue rule counts can escalate: done, canceled and accepted
items never do.

What fired is kept in the notifier's state (``state["escalations"]``: item → step → when), in the
same locked, atomic state write that queues the notification and the item's ``escalated``
event (``state["escalation_events"]``), exactly as the per-owner reminders are: a re-run, a
second runner process, or a crash after the write never fires a step twice, and a step that
was queued is never lost. A step is known by its day, action, target and priorities, so
reordering the list or adding a step fires only what is new.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.router.alerts.notifier import notification
from services.router.clock import iso_z
from services.router.domain.acceptance import hold
from services.router.domain.enums import Priority

State = dict[str, Any]
OWNER_TARGET = "owner"
ACTOR = "system"  # who writes the ``escalated`` events
MEMORY_DAYS = 366  # an item not overdue for this long is forgotten (its steps could fire again)


class EscalationStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_days_overdue: int = Field(ge=1, le=3650)
    notify: str | None = Field(default=None, min_length=1, max_length=64)
    page: str | None = Field(default=None, min_length=1, max_length=64)
    priorities: list[Priority] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_action(self) -> EscalationStep:
        if (self.notify is None) == (self.page is None):
            raise ValueError("an escalation step needs exactly one of notify, page")
        return self

    @property
    def action(self) -> Literal["notify", "page"]:
        return "notify" if self.notify is not None else "page"

    @property
    def target(self) -> str:
        return self.notify if self.notify is not None else str(self.page)

    @property
    def key(self) -> str:
        """``7d:notify:oncall`` (``:P0,P1`` when limited): what the state remembers the step by."""
        limited = ":" + ",".join(p.value for p in self.priorities) if self.priorities else ""
        return f"{self.after_days_overdue}d:{self.action}:{self.target}{limited}"

    def applies(self, item: dict[str, Any], days: int) -> bool:
        return days >= self.after_days_overdue and (
            self.priorities is None or item["priority"] in {p.value for p in self.priorities})


def check_steps(steps: list[EscalationStep]) -> list[EscalationStep]:
    """Steps in order of their day (``after_days_overdue`` never decreasing), none twice."""
    days = [s.after_days_overdue for s in steps]
    if days != sorted(days):
        raise ValueError(f"escalation steps must be ordered by after_days_overdue; got {days}")
    keys = [s.key for s in steps]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"escalation step listed twice: {', '.join(twice)}")
    return steps


def days_overdue(item: dict[str, Any], today: date) -> int:
    """Days since the last day the item was not overdue (0 when it is not overdue)."""
    due = item.get("due_date")
    if not isinstance(due, str):
        return 0
    last = max(due, hold(item.get("accepted")) or due)
    return max(0, (today - date.fromisoformat(last)).days)


def escalations(state: State, *, env: str, overdue: list[dict[str, Any]], steps: list[EscalationStep],
                now: datetime) -> list[dict[str, Any]]:
    """Fire the steps each overdue item has reached and not had yet: update ``state`` (what fired,
    the events to write) and return the notifications."""
    fired: dict[str, Any] = state.setdefault("escalations", {})
    events: list[dict[str, Any]] = state.setdefault("escalation_events", [])
    today = now.date()
    out: list[dict[str, Any]] = []
    for item in overdue:
        days = days_overdue(item, today)
        memory = fired.setdefault(item["id"], {"steps": {}, "seen": today.isoformat()})
        memory["seen"] = today.isoformat()
        for number, step in enumerate(steps, 1):
            if step.key in memory["steps"] or not step.applies(item, days):
                continue
            target = item["owner"] if step.target == OWNER_TARGET else step.target
            message = (f"{env}/{item['service']}: {item['title']} ({item['id']}, {item['priority']}, owner "
                       f"{item['owner']}) is {days} day(s) overdue — escalation step {number}: {step.action} {target}")
            out.append(notification(
                "escalation", now, env=env, step=number, step_key=step.key, action=step.action, target=target,
                severity="critical" if step.action == "page" else "warning", message=message, items=[item["id"]],
                days_overdue=days))
            memory["steps"][step.key] = iso_z(now)
            events.append({"item_id": item["id"], "message": f"escalation step {number}: {step.action} {target} "
                                                            f"({days} day(s) overdue)",
                           "meta": {"step": number, "step_key": step.key, "action": step.action, "target": target,
                                    "days_overdue": days}})
    forget = (today - timedelta(days=MEMORY_DAYS)).isoformat()
    for item_id in [k for k, v in fired.items() if v.get("seen", "") < forget]:
        del fired[item_id]
    return out
