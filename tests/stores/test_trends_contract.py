"""Trends and problems on every backend, against a plain model the test keeps itself.

The test drives a history through the store (items created across weeks, status moves,
reopen-then-close, created and closed in one week, due dates moved, risks accepted, withdrawn
and expired, P0s, another env) and writes down, as it goes, each item's status, due date and
acceptance hold from each moment on. The model then answers each week the slow way — every
item, every week's end, its state then, by the overdue rule of ``transitions.is_overdue`` — and
every backend must give the same rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from services.router.clock import FixedClock
from services.router.domain import acceptance
from services.router.domain.enums import Status
from services.router.domain.revisions import Revision
from services.router.domain.weeks import iso_week
from services.router.errors import Conflict
from services.router.stores.base import BacklogStore
from tests.conftest import AUTO_BACKENDS, BACKENDS
from tests.factories import item

ACTIVE = ("open", "in_progress", "blocked")


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Tracked:
    """One item as the test saw it: (moment, status, due date, hold) from each change on."""

    id: str
    env: str
    service: str
    category: str
    priority: str
    key: str
    created: datetime
    history: list[tuple[datetime, str, str | None, str | None]] = field(default_factory=list)
    until: str | None = None  # the current acceptance's last day

    def state_before(self, moment: datetime) -> tuple[str, str | None, str | None] | None:
        """Status, due date and acceptance hold just before ``moment`` (None: not created yet)."""
        if self.created >= moment:
            return None
        state = self.history[0]
        for entry in self.history:
            if entry[0] < moment:
                state = entry
        return state[1], state[2], state[3]

    @property
    def now(self) -> tuple[str, str | None, str | None]:
        return self.history[-1][1], self.history[-1][2], self.history[-1][3]

    def record(self, at: datetime, status: str, due: str | None, hold: str | None) -> None:
        self.history.append((at, status, due, hold))


def overdue(due: str | None, hold: str | None, day: str) -> bool:
    """The rule every overdue figure uses, written out again: due before ``day`` and not held through it."""
    return due is not None and due < day and (hold is None or hold < day)


class Model:
    def __init__(self, store: BacklogStore, clock: FixedClock) -> None:
        self.store, self.clock = store, clock
        self.items: dict[str, Tracked] = {}
        self.closings: list[tuple[str, datetime]] = []
        self.owners: dict[str, str] = {}

    def create(self, key: str, *, env: str = "prod", service: str = "gateway", category: str = "arch_review",
               priority: str = "P2", due: date | None = None) -> str:
        fields = {"priority": priority, **({"due_date": due} if due else {})}
        record = self.store.upsert(item(key, env=env, service=service, category=category, title=f"Item {key}",
                                        **fields), actor="gen").item
        now = self.clock.now()
        self.items[record["id"]] = Tracked(record["id"], env, service, category, priority, key, now,
                                           [(now, "open", due.isoformat() if due else None, None)])
        return str(record["id"])

    def move(self, item_id: str, status: str) -> None:
        tracked = self.items[item_id]
        if tracked.now[0] == status:
            return
        self.store.set_status(item_id, Status(status), actor="t")
        tracked.record(self.clock.now(), status, tracked.now[1], tracked.now[2])
        if status in ("done", "canceled"):
            self.closings.append((tracked.id, self.clock.now()))

    def owner(self, item_id: str, owner: str) -> None:
        self.store.set_owner(item_id, owner, actor="t")
        self.owners[item_id] = owner

    def due(self, item_id: str, due: date | None) -> None:
        tracked = self.items[item_id]
        self.store.set_due_date(item_id, due, actor="t")
        tracked.record(self.clock.now(), tracked.now[0], due.isoformat() if due else None, tracked.now[2])

    def accept(self, item_id: str, until: date, *, restart: date | None = None) -> None:
        """Accept the item's risk through ``until`` (with the due date restarting to ``restart`` at
        expiry), recording an expired acceptance's end first as the accept action does."""
        tracked = self.items[item_id]
        self.expire(item_id)
        value = acceptance.acceptance(until=until, reason="vendor patch", by="admin", now=self.clock.now(),
                                      due_on_expiry=restart)
        self.store.revise(item_id, Revision(kind="accept", accepted=value), actor="admin")
        tracked.until = until.isoformat()
        tracked.record(self.clock.now(), tracked.now[0], tracked.now[1], (restart or until).isoformat())

    def unaccept(self, item_id: str) -> None:
        tracked = self.items[item_id]
        self.expire(item_id)
        if tracked.until is not None:
            self.store.revise(item_id, Revision(kind="unaccept"), actor="admin")
            tracked.until = None
            tracked.record(self.clock.now(), tracked.now[0], tracked.now[1], None)

    def expire(self, item_id: str) -> None:
        """Record the end of an acceptance whose day has passed (restarting the due date of an
        active item when the acceptance says so)."""
        tracked, today = self.items[item_id], self.clock.now().date().isoformat()
        if tracked.until is None or tracked.until >= today:
            return
        self.store.revise(item_id, Revision(kind="expire_acceptance", today=self.clock.now().date()), actor="system")
        status, due, hold = tracked.now
        if hold != tracked.until and status in ACTIVE:  # a restart: the due date becomes the hold
            due = max(due, hold) if due is not None and hold is not None else hold
        tracked.until = None
        tracked.record(self.clock.now(), status, due, None)

    def trends(self, env: str | None, service: str | None, weeks: int) -> list[dict[str, object]]:
        today = self.clock.now().date()
        monday = today - timedelta(days=today.weekday())
        rows = []
        chosen = [i for i in self.items.values()
                  if (env is None or i.env == env) and (service is None or i.service == service)]
        for back in range(weeks - 1, -1, -1):
            start_day = monday - timedelta(weeks=back)
            start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
            end, sunday = start + timedelta(days=7), (start_day + timedelta(days=6)).isoformat()
            states = [(i, i.state_before(end)) for i in chosen]
            active = [(i, s) for i, s in states if s is not None and s[0] in ACTIVE]
            rows.append({
                "week": iso_week(start_day),
                "opened": sum(1 for i in chosen if start <= i.created < end),
                "closed": sum(1 for item_id, at in self.closings
                              if self.items[item_id] in chosen and start <= at < end),
                "open_at_end": len(active),
                "overdue_at_end": sum(1 for _, s in active if overdue(s[1], s[2], sunday)),
                "p0_open_at_end": sum(1 for i, _ in active if i.priority == "P0"),
            })
        return rows

    def problems(self, env: str) -> list[dict[str, object]]:
        today = self.clock.now().date()
        groups: dict[tuple[str, str], list[Tracked]] = {}
        for i in self.items.values():
            if i.env == env and i.now[0] in ACTIVE:
                groups.setdefault((i.service, i.category), []).append(i)
        rank = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}
        rows = []
        for (service, category), members in groups.items():
            members.sort(key=lambda i: i.id, reverse=True)
            mondays = []
            for i in members:
                week = i.key.split(":")[1] if i.key.count(":") >= 2 else None
                start = date.fromisocalendar(int(week[:4]), int(week[6:]), 1) if week else \
                    i.created.date() - timedelta(days=i.created.weekday())
                mondays.append(start)
            # when each counts as overdue from: its due date, or a later hold
            dues = [max(d for d in (i.now[1], i.now[2]) if d) for i in members if i.now[1]]
            this_monday = today - timedelta(days=today.weekday())
            rows.append({"service": service, "category": category, "items": [i.id for i in members],
                         "weeks_open": max(1, (this_monday - min(mondays)).days // 7 + 1),
                         "first_week": iso_week(min(mondays)), "oldest_due_date": min(dues) if dues else None,
                         "priority": min((i.priority for i in members), key=rank.__getitem__),
                         "owner": self.owners.get(members[0].id, "oncall"),
                         "overdue": any(overdue(i.now[1], i.now[2], today.isoformat()) for i in members)})
        return sorted(rows, key=lambda r: (rank[str(r["priority"])], -int(str(r["weeks_open"])), r["service"],
                                           r["category"]))


def history(model: Model, clock: FixedClock, *, start: datetime, weeks: int, seed: int) -> None:
    """``weeks`` weeks of a team's work, from ``start``: a few items a week and what happens to them."""
    rng = random.Random(seed)
    clock.set(start)
    n = 0
    for week in range(weeks):
        monday = start + timedelta(weeks=week)
        for day in range(7):
            clock.set(monday + timedelta(days=day, hours=rng.randint(0, 23), minutes=rng.randint(0, 59)))
            for _ in range(rng.randint(0, 2)):
                n += 1
                label = iso_week(clock.now().date())
                service = rng.choice(["gateway", "payments", "auth"])
                due = clock.now().date() + timedelta(days=rng.randint(-3, 14)) if rng.random() < 0.8 else None
                model.create(f"platform_backlog:{label}:prod:{service}:c{n}", service=service,
                             category=rng.choice(["security", "arch_review"]), priority=rng.choice(["P0", "P1", "P2"]),
                             due=due, env=rng.choice(["prod", "prod", "prod", "staging"]))
            for item_id in rng.sample(sorted(model.items), k=min(3, len(model.items))):
                clock.advance(minutes=7)
                roll, current = rng.random(), model.items[item_id].now[0]
                if current in ("done", "canceled"):
                    if roll < 0.3:
                        model.move(item_id, "open")  # reopened: a later close counts again
                elif roll < 0.3:
                    model.move(item_id, rng.choice(["done", "canceled"]))
                elif roll < 0.6:
                    model.move(item_id, rng.choice(ACTIVE))
                elif roll < 0.75:
                    model.due(item_id, clock.now().date() + timedelta(days=rng.randint(-10, 10)))
                elif roll < 0.8:
                    model.due(item_id, None)
                elif roll < 0.9:
                    until = clock.now().date() + timedelta(days=rng.randint(1, 12))
                    model.accept(item_id, until, restart=until + timedelta(days=rng.randint(1, 8))
                                 if rng.random() < 0.4 else None)
                elif roll < 0.93:
                    model.unaccept(item_id)
                elif roll < 0.96:
                    model.expire(item_id)
                else:
                    model.owner(item_id, rng.choice(["team-a", "team-b"]))


def test_trends_and_problems_equal_the_model(store: BacklogStore, clock: FixedClock) -> None:
    model = Model(store, clock)
    history(model, clock, start=datetime(2026, 10, 5, tzinfo=UTC), weeks=8, seed=20)
    clock.set(datetime(2026, 11, 26, 12, tzinfo=UTC))
    for env, service, weeks in [("prod", None, 12), ("prod", "gateway", 5), (None, None, 9), ("staging", None, 1)]:
        assert store.trends(env, service, weeks) == model.trends(env, service, weeks), (env, service, weeks)
    assert store.problems("prod") == model.problems("prod")
    assert store.problems("staging") == model.problems("staging")
    assert store.problems("prod", "auth") == [p for p in model.problems("prod") if p["service"] == "auth"]


def test_reopen_then_close_and_created_and_closed_in_one_week(store: BacklogStore, clock: FixedClock) -> None:
    model = Model(store, clock)
    clock.set(datetime(2026, 11, 2, 9, tzinfo=UTC))  # Monday of 2026-W45
    a = model.create("a", priority="P0", due=date(2026, 11, 4))
    b = model.create("b")
    clock.advance(days=1)
    model.move(b, "done")  # created and closed in W45
    clock.advance(days=1)
    model.move(a, "done")
    clock.advance(hours=2)
    model.move(a, "open")  # reopened …
    clock.advance(hours=2)
    model.move(a, "canceled")  # … and closed again: two closings in W45
    clock.set(datetime(2026, 11, 15, 23, 59, 59, 999999, tzinfo=UTC))  # Sunday of W46, the last moment
    model.move(a, "open")
    clock.set(datetime(2026, 11, 16, 0, 0, tzinfo=UTC))  # Monday of W47, the first moment
    model.move(a, "done")
    clock.set(datetime(2026, 11, 26, 12, tzinfo=UTC))
    rows = store.trends("prod", None, 4)
    assert rows == model.trends("prod", None, 4)
    assert [(r["week"], r["opened"], r["closed"], r["open_at_end"], r["overdue_at_end"], r["p0_open_at_end"])
            for r in rows] == [("2026-W45", 2, 3, 0, 0, 0), ("2026-W46", 0, 0, 1, 1, 1),
                               ("2026-W47", 0, 1, 0, 0, 0), ("2026-W48", 0, 0, 0, 0, 0)]


def test_an_accepted_risk_is_overdue_at_no_week_end_its_acceptance_held(store: BacklogStore,
                                                                         clock: FixedClock) -> None:
    """Each week's end by the acceptance in force then: accepting a risk later does not rewrite the
    weeks it was overdue in, an acceptance's days are not overdue (through a restarted due date
    too), and it counts again from the week its hold ended — recorded or not."""
    model = Model(store, clock)
    clock.set(datetime(2026, 11, 2, 9, tzinfo=UTC))  # Monday of 2026-W45
    late = model.create("late", due=date(2026, 11, 4))
    restarted = model.create("restarted", category="security", due=date(2026, 11, 3))
    later = model.create("later", category="deploy_safety", due=date(2026, 11, 20))
    clock.set(datetime(2026, 11, 5, 10, tzinfo=UTC))
    model.accept(restarted, date(2026, 11, 12), restart=date(2026, 11, 19))
    clock.set(datetime(2026, 11, 10, 10, tzinfo=UTC))  # W46: 'late' was overdue at W45's end
    model.accept(late, date(2026, 11, 20))
    clock.set(datetime(2026, 11, 17, 10, tzinfo=UTC))  # W47: restarted's acceptance ends, its due date restarts
    model.expire(restarted)
    clock.set(datetime(2026, 11, 24, 10, tzinfo=UTC))  # W48: late's acceptance ended on Friday of W47
    model.expire(late)
    clock.set(datetime(2026, 11, 25, 10, tzinfo=UTC))
    model.accept(later, date(2026, 12, 10))  # overdue at W47's end, held now
    clock.set(datetime(2026, 11, 26, 12, tzinfo=UTC))
    rows = store.trends("prod", None, 4)
    assert rows == model.trends("prod", None, 4)
    assert [(r["week"], r["open_at_end"], r["overdue_at_end"]) for r in rows] == [
        ("2026-W45", 3, 1), ("2026-W46", 3, 0), ("2026-W47", 3, 3), ("2026-W48", 3, 2)]
    problems = {p["category"]: p for p in store.problems("prod")}
    assert store.problems("prod") == model.problems("prod")
    assert (problems["deploy_safety"]["overdue"], problems["deploy_safety"]["oldest_due_date"]) == (False, "2026-12-10")
    assert (problems["security"]["overdue"], problems["security"]["oldest_due_date"]) == (True, "2026-11-19")
    assert store.dashboard("prod")["overdue_count"] == 2


def test_iso_week_53_and_the_turn_of_the_year(store: BacklogStore, clock: FixedClock) -> None:
    model = Model(store, clock)
    history(model, clock, start=datetime(2026, 12, 14, tzinfo=UTC), weeks=4, seed=53)
    clock.set(datetime(2027, 1, 6, 12, tzinfo=UTC))
    rows = store.trends("prod", None, 4)
    assert [r["week"] for r in rows] == ["2026-W51", "2026-W52", "2026-W53", "2027-W01"]
    assert rows == model.trends("prod", None, 4)
    assert store.problems("prod") == model.problems("prod")


def test_an_empty_env_has_every_week_at_zero(store: BacklogStore, clock: FixedClock) -> None:
    store.upsert(item("elsewhere", env="staging"), actor="gen")
    rows = store.trends("nowhere", None, 104)
    assert len(rows) == 104 and rows[-1]["week"] == "2026-W48" and rows[0]["week"] == "2024-W49"
    assert all(r["opened"] == r["closed"] == r["open_at_end"] == r["overdue_at_end"] == r["p0_open_at_end"] == 0
               for r in rows)
    assert store.problems("nowhere") == []


class TestEdits:
    def test_owner_and_due_date_write_one_event_each(self, store: BacklogStore, clock: FixedClock) -> None:
        created = store.upsert(item("k1", due_date="2026-12-01"), actor="gen").item
        clock.advance(minutes=5)
        owner = store.set_owner(created["id"], "team-edge", actor="alice", message="edge owns the gateway")
        due = store.set_due_date(created["id"], date(2026, 12, 15), actor="oncall", on_behalf_of="dana@example.com")
        assert (owner.action, due.action) == ("updated", "updated")
        got = store.get(created["id"])
        assert got is not None and (got["owner"], got["due_date"], got["rev"]) == ("team-edge", "2026-12-15", 3)
        assert got["updated_at"] == "2026-11-26T12:05:00.000000Z"
        events = store.events(created["id"])
        assert [e["type"] for e in events] == ["created", "owner_changed", "due_date_changed"]
        assert (events[1]["meta"]["from"], events[1]["meta"]["to"], events[1]["message"]) == (
            "oncall", "team-edge", "edge owns the gateway")
        assert (events[2]["meta"], events[2]["actor"], events[2]["on_behalf_of"]) == (
            {"from": "2026-12-01", "to": "2026-12-15"}, "oncall", "dana@example.com")
        assert "on_behalf_of" not in events[1]  # the account acted for itself
        assert store.set_owner(created["id"], "team-edge", actor="alice").action == "unchanged"
        cleared = store.set_due_date(created["id"], None, actor="alice")
        assert cleared.item["due_date"] is None and cleared.event is not None
        assert cleared.event["meta"] == {"from": "2026-12-15", "to": None}
        assert len(store.events(created["id"])) == 4

    @pytest.mark.parametrize("closed", [Status.DONE, Status.CANCELED])
    def test_a_closed_item_is_refused_naming_the_moves(self, store: BacklogStore, closed: Status) -> None:
        created = store.upsert(item("k1", due_date="2026-12-01"), actor="gen").item
        store.set_status(created["id"], closed, actor="t")
        for edit in (lambda: store.set_owner(created["id"], "bob", actor="t"),
                     lambda: store.set_due_date(created["id"], date(2027, 1, 1), actor="t")):
            with pytest.raises(Conflict) as refused:
                edit()
            assert refused.value.message.endswith(f"of a {closed.value} item; allowed: open (reopen it first)")
            assert refused.value.details["allowed"] == ["open"]
        got = store.get(created["id"])
        assert got is not None and (got["owner"], got["due_date"]) == ("oncall", "2026-12-01")
        assert len(store.events(created["id"])) == 2
