"""The store contract: the same sequence of operations gives the same results on every backend."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import ALL_PRIORITIES, ALL_STATUSES, Status
from services.router.domain.queries import ItemQuery
from services.router.domain.transitions import ALLOWED_MOVES
from services.router.errors import NotFound, StoreUnavailable, TransitionRefused
from services.router.stores.base import BacklogStore, UpsertRequest
from tests.conftest import AUTO_BACKENDS, BACKENDS, StoreFactory
from tests.factories import item


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend, and the Auto store healthy and degraded (``tests/conftest.py``)."""
    return str(request.param)


def event_types(store: BacklogStore, item_id: str) -> list[str]:
    return [e["type"] for e in store.events(item_id)]


class TestUpsert:
    def test_new_key_creates_an_open_item_with_one_event(self, store: BacklogStore) -> None:
        result = store.upsert(item("k1", priority="P1", due_date="2026-12-10"), actor="alice",
                              fallback_owner="team-edge")
        assert result.action == "created"
        got = store.get(result.item["id"])
        assert got is not None
        assert got["id"].startswith("bl_")
        assert (got["status"], got["owner"], got["priority"], got["due_date"]) == ("open", "team-edge", "P1",
                                                                                   "2026-12-10")
        assert got["created_at"] == got["updated_at"] == "2026-11-26T12:00:00.000000Z"
        assert store.get_by_dedupe_key("k1") == got
        assert event_types(store, got["id"]) == ["created"]
        assert store.events(got["id"])[0]["actor"] == "alice"

    def test_existing_key_updates_only_content_fields(self, store: BacklogStore, clock: FixedClock) -> None:
        first = store.upsert(item("k1", priority="P1", due_date="2026-12-10"), actor="gen").item
        store.set_status(first["id"], Status.IN_PROGRESS, actor="bob")
        clock.advance(hours=1)
        second = store.upsert(
            item("k1", title="New title", description="more", priority="P3", due_date="2027-01-01",
                 evidence_refs=["INC-1"], tags=["weekly"], meta={"week": "2026-W48"}),
            actor="gen", fallback_owner="someone-else",
        )
        assert second.action == "updated"
        got = store.get(first["id"])
        assert got is not None
        assert (got["title"], got["description"], got["evidence_refs"], got["tags"], got["meta"]) == (
            "New title", "more", ["INC-1"], ["weekly"], {"week": "2026-W48"})
        # owner, status, priority and due_date are kept
        assert (got["owner"], got["status"], got["priority"], got["due_date"]) == ("oncall", "in_progress", "P1",
                                                                                   "2026-12-10")
        assert got["created_at"] == first["created_at"]
        assert got["updated_at"] == "2026-11-26T13:00:00.000000Z"
        assert event_types(store, first["id"]) == ["created", "status_changed", "updated"]
        assert store.events(first["id"])[-1]["meta"]["fields"] == ["title", "description", "evidence_refs",
                                                                    "tags", "meta"]

    def test_noop_upsert_writes_nothing(self, store: BacklogStore, backend: str, tmp_path: object) -> None:
        created = store.upsert(item("k1", meta={"a": 1}), actor="gen").item
        sizes = jsonl_sizes(store)
        again = store.upsert(item("k1", meta={"a": 1}), actor="gen")
        assert again.action == "unchanged"
        assert again.event is None
        assert store.get(created["id"]) == created
        assert event_types(store, created["id"]) == ["created"]
        assert jsonl_sizes(store) == sizes

    def test_explicit_owner_changes_owner_with_owner_changed_event(self, store: BacklogStore) -> None:
        created = store.upsert(item("k1"), actor="gen", fallback_owner="oncall").item
        changed = store.upsert(item("k1", owner="team-edge"), actor="alice")
        assert changed.action == "updated"
        got = store.get(created["id"])
        assert got is not None and got["owner"] == "team-edge"
        last = store.events(created["id"])[-1]
        assert (last["type"], last["meta"]["from"], last["meta"]["to"]) == ("owner_changed", "oncall", "team-edge")
        # naming the same owner again is a no-op
        assert store.upsert(item("k1", owner="team-edge"), actor="alice").action == "unchanged"
        assert event_types(store, created["id"]) == ["created", "owner_changed"]

    def test_batch_dedupes_keys_inside_the_batch(self, store: BacklogStore) -> None:
        results = store.upsert_many(
            [UpsertRequest(item("k1", title="one")), UpsertRequest(item("k2")),
             UpsertRequest(item("k1", title="two"), fallback_owner="x")],
            actor="gen",
        )
        assert [r.action for r in results] == ["created", "created", "created"]
        got = store.get_by_dedupe_key("k1")
        assert got is not None and (got["title"], got["owner"]) == ("two", "x")
        assert event_types(store, got["id"]) == ["created"]
        # created where one-by-one requests would create it: k1 first (ids are creation order)
        assert [i["dedupe_key"] for i in store.list(ItemQuery()).items] == ["k1", "k2"]

    def test_manual_item_without_key_dedupes_on_title(self, store: BacklogStore) -> None:
        a = store.upsert(item(None, title="Rotate certs"), actor="alice")  # type: ignore[arg-type]
        b = store.upsert(item(None, title="Rotate certs"), actor="alice")  # type: ignore[arg-type]
        assert a.item["id"] == b.item["id"]
        assert a.item["dedupe_key"].startswith("manual:prod:gateway:arch_review:")


class TestStatus:
    @pytest.mark.parametrize("start", list(Status))
    @pytest.mark.parametrize("target", list(Status))
    def test_transition_table(self, store: BacklogStore, start: Status, target: Status) -> None:
        item_id = store.upsert(item("k1"), actor="gen").item["id"]
        if start is not Status.OPEN:
            store.set_status(item_id, start, actor="t")
        before = event_types(store, item_id)
        if start == target:
            assert store.set_status(item_id, target, actor="t").action == "unchanged"
            assert event_types(store, item_id) == before
        elif target in ALLOWED_MOVES[start]:
            result = store.set_status(item_id, target, actor="t", message="why")
            assert result.item["status"] == target.value
            last = store.events(item_id)[-1]
            assert (last["type"], last["meta"], last["message"]) == (
                "status_changed", {"from": start.value, "to": target.value}, "why")
            assert event_types(store, item_id) == [*before, "status_changed"]
        else:
            with pytest.raises(TransitionRefused) as info:
                store.set_status(item_id, target, actor="t")
            assert "allowed: open" in info.value.message
            got = store.get(item_id)
            assert got is not None and got["status"] == start.value
            assert event_types(store, item_id) == before

    def test_unknown_item(self, store: BacklogStore, backend: str) -> None:
        # Degraded, the Auto store cannot tell "unknown" from "only in Postgres": retry later (503).
        refused = StoreUnavailable if backend == "auto-degraded" else NotFound
        with pytest.raises(refused):
            store.set_status("bl_000000000000000000000000", Status.DONE, actor="t")
        with pytest.raises(refused):
            store.add_comment("bl_000000000000000000000000", "hi", actor="t")
        with pytest.raises(NotFound):
            store.events("bl_000000000000000000000000")
        assert store.get("bl_000000000000000000000000") is None


class TestComments:
    def test_comment_is_one_event_and_leaves_the_item_alone(self, store: BacklogStore) -> None:
        created = store.upsert(item("k1"), actor="gen").item
        event = store.add_comment(created["id"], "looking into it", actor="bob")
        assert (event["type"], event["actor"], event["message"]) == ("commented", "bob", "looking into it")
        assert store.get(created["id"]) == created
        assert event_types(store, created["id"]) == ["created", "commented"]


class TestReopen:
    def test_a_reopened_store_sees_everything(self, make_store: StoreFactory) -> None:
        first = make_store()
        a = first.upsert(item("k1"), actor="gen").item
        first.set_status(a["id"], Status.BLOCKED, actor="t")
        first.add_comment(a["id"], "waiting on vendor", actor="t")
        second = make_store()
        assert second.get(a["id"]) == first.get(a["id"])
        assert [e["id"] for e in second.events(a["id"])] == [e["id"] for e in first.events(a["id"])]
        # and writes from the second are seen by the first
        b = second.upsert(item("k2"), actor="gen").item
        assert first.get(b["id"]) == b


class TestList:
    def seed(self, store: BacklogStore) -> list[str]:
        ids = []
        specs = [
            ("k1", dict(env="prod", service="gateway", category="security", priority="P0", owner="alice",
                        due_date="2026-11-20")),
            ("k2", dict(env="prod", service="gateway", category="arch_review", priority="P1", owner="bob",
                        due_date="2026-12-20")),
            ("k3", dict(env="prod", service="billing", category="security", priority="P0", owner="alice")),
            ("k4", dict(env="staging", service="gateway", category="slo_hardening", priority="P2", owner="bob",
                        due_date="2026-11-01")),
            ("k5", dict(env="prod", service="search", category="deploy_safety", priority="P3", owner="carol",
                        due_date="2026-11-25")),
        ]
        for key, fields in specs:
            ids.append(store.upsert(item(key, **fields), actor="gen").item["id"])
        store.set_status(ids[4], Status.DONE, actor="t")  # k5 overdue date but done → not overdue
        return ids

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (dict(), ["k1", "k2", "k3", "k4", "k5"]),
            (dict(env="prod"), ["k1", "k2", "k3", "k5"]),
            (dict(service="gateway"), ["k1", "k2", "k4"]),
            (dict(status="done"), ["k5"]),
            (dict(owner="alice"), ["k1", "k3"]),
            (dict(priority="P0"), ["k1", "k3"]),
            (dict(category="security", env="prod"), ["k1", "k3"]),
            (dict(overdue=True), ["k1", "k4"]),
            (dict(overdue=False, env="prod"), ["k2", "k3", "k5"]),
            (dict(active=False), ["k5"]),
            (dict(env="prod", service="gateway", priority="P1"), ["k2"]),
            (dict(env="nope"), []),
        ],
    )
    def test_filters(self, store: BacklogStore, query: dict[str, object], expected: list[str]) -> None:
        self.seed(store)
        page = store.list(ItemQuery.model_validate(query))
        assert [r["dedupe_key"] for r in page.items] == expected
        assert page.next_cursor is None

    def test_pagination_is_stable_and_complete(self, store: BacklogStore) -> None:
        self.seed(store)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = store.list(ItemQuery(limit=2, cursor=cursor))
            seen += [r["dedupe_key"] for r in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            # a write between pages does not shift or repeat anything
            store.upsert(item(f"late{pages}"), actor="gen")
            cursor = page.next_cursor
        assert seen[:5] == ["k1", "k2", "k3", "k4", "k5"]
        assert len(seen) == len(set(seen))


    def test_fields_narrow_the_records_not_the_page(self, store: BacklogStore) -> None:
        self.seed(store)
        wanted = ("status", "meta", "dedupe_key")
        for query in (ItemQuery(env="prod", limit=2), ItemQuery(env="prod", active=True, limit=500)):
            whole = store.list(query)
            narrow = store.list(query, fields=wanted)
            assert [r["id"] for r in narrow.items] == [r["id"] for r in whole.items]
            assert narrow.next_cursor == whole.next_cursor
            for full, part in zip(whole.items, narrow.items, strict=True):
                assert {k: part[k] for k in ("id", *wanted)} == {k: full[k] for k in ("id", *wanted)}

    def test_unknown_fields_are_refused_on_every_backend(self, store: BacklogStore) -> None:
        self.seed(store)
        with pytest.raises(ValueError, match="not item record fields: \\['colour'\\]"):
            store.list(ItemQuery(), fields=("status", "colour"))
        for bad in ("meta.", "meta.a-b", "meta.x y", "meta.'"):
            with pytest.raises(ValueError, match="not item record fields"):
                store.list(ItemQuery(), fields=(bad,))

    def test_a_meta_key_field_reads_that_key_as_the_record_holds_it(self, store: BacklogStore) -> None:
        """``meta.weeks_open``: carry-over and the weeks-open gauge read that key alone; it must
        come back as the whole record has it — present with its value, or absent."""
        store.upsert(item("w3", meta={"weeks_open": 3, "digest": "platform/2026-W48.json"}), actor="gen")
        store.upsert(item("w-null", meta={"weeks_open": None}), actor="gen")
        store.upsert(item("w-none", meta={"digest": "platform/2026-W48.json"}), actor="gen")
        store.upsert(item("w-empty"), actor="gen")
        whole = store.list(ItemQuery())
        part = store.list(ItemQuery(), fields=("dedupe_key", "meta.weeks_open"))
        assert [r["id"] for r in part.items] == [r["id"] for r in whole.items]
        for full, narrow in zip(whole.items, part.items, strict=True):
            assert narrow["dedupe_key"] == full["dedupe_key"]
            assert ("weeks_open" in narrow["meta"]) == ("weeks_open" in full["meta"]), full["dedupe_key"]
            assert narrow["meta"].get("weeks_open") == full["meta"].get("weeks_open")
        both = store.list(ItemQuery(), fields=("meta", "meta.weeks_open"))  # the whole meta wins
        assert [r["meta"] for r in both.items] == [r["meta"] for r in whole.items]


class TestDashboard:
    def test_numbers_match_an_independent_count(self, store: BacklogStore) -> None:
        today = date(2026, 11, 26)
        statuses = ["open", "in_progress", "blocked", "done", "canceled"]
        expected_status: Counter[str] = Counter()
        expected_priority: Counter[str] = Counter()
        expected_overdue: list[tuple[str, int, str]] = []
        active_by_service: Counter[str] = Counter()
        for i in range(60):
            env = "prod" if i % 4 else "staging"
            status = statuses[i % 5]
            priority = ALL_PRIORITIES[(i * 7) % 4]
            due = (today + timedelta(days=(i % 9) - 5)).isoformat() if i % 3 else None
            service = f"svc{i % 13}"
            created = store.upsert(item(f"k{i}", env=env, service=service, priority=priority, due_date=due),
                                   actor="gen").item
            if status != "open":
                store.set_status(created["id"], Status(status), actor="t")
            if env != "prod":
                continue
            expected_status[status] += 1
            expected_priority[priority] += 1
            if status in ("open", "in_progress", "blocked"):
                active_by_service[service] += 1
                if due is not None and due < today.isoformat():
                    expected_overdue.append((due, ALL_PRIORITIES.index(priority), created["id"]))
        d = store.dashboard("prod")
        assert d["env"] == "prod"
        assert d["total"] == sum(expected_status.values()) == 45
        assert d["status_counts"] == {s: expected_status[s] for s in ALL_STATUSES}
        assert d["priority_counts"] == {p: expected_priority[p] for p in ALL_PRIORITIES}
        assert d["overdue_count"] == len(expected_overdue)
        assert [o["id"] for o in d["overdue"]] == [x[2] for x in sorted(expected_overdue)]
        assert set(d["overdue"][0]) == {"id", "env", "service", "category", "priority", "status", "owner", "due_date",
                                        "title"}
        top = sorted(active_by_service.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert d["top_services"] == [{"service": s, "count": c} for s, c in top]

    def test_empty_env_is_zero_filled(self, store: BacklogStore) -> None:
        d = store.dashboard("nowhere")
        assert d["total"] == 0 and d["overdue"] == [] and d["top_services"] == []
        assert d["status_counts"] == dict.fromkeys(ALL_STATUSES, 0)
        assert d["priority_counts"] == dict.fromkeys(ALL_PRIORITIES, 0)

    def test_overdue_is_capped_at_50(self, store: BacklogStore) -> None:
        store.upsert_many([UpsertRequest(item(f"k{i}", due_date="2026-01-01")) for i in range(55)], actor="gen")
        d = store.dashboard("prod")
        assert d["overdue_count"] == 55 and len(d["overdue"]) == 50

    def test_a_dashboard_drawn_again_shows_every_change_since(self, store: BacklogStore, clock: FixedClock) -> None:
        first = store.upsert(item("k1", due_date="2026-01-01", priority="P0"), actor="gen").item
        before = store.dashboard("prod")
        clock.advance(minutes=5)
        store.upsert(item("k2", due_date="2026-01-02", priority="P1"), actor="gen")
        store.set_status(first["id"], Status.DONE, actor="t")
        after = store.dashboard("prod")
        assert (before["total"], before["overdue_count"], before["status_counts"]["done"]) == (1, 1, 0)
        assert (after["total"], after["overdue_count"], after["status_counts"]["done"]) == (2, 1, 1)
        assert [o["priority"] for o in after["overdue"]] == ["P1"]
        assert after["generated_at"] == "2026-11-26T12:05:00.000000Z" != before["generated_at"]
        assert store.dashboard("prod")["overdue"] == after["overdue"]

    def test_overdue_ids_count_all_and_list_the_first_in_id_order(self, store: BacklogStore) -> None:
        today = store.clock.now().date()
        past, future = (today - timedelta(days=3)).isoformat(), (today + timedelta(days=3)).isoformat()
        reqs = [UpsertRequest(item(f"p0-{i}", priority="P0", due_date=past)) for i in range(7)]
        reqs += [UpsertRequest(item("p1-late", priority="P1", due_date=past)),
                 UpsertRequest(item("p0-later", priority="P0", due_date=future)),
                 UpsertRequest(item("p0-undated", priority="P0")),
                 UpsertRequest(item("p0-staging", env="staging", priority="P0", due_date=past)),
                 UpsertRequest(item("p0-done", priority="P0", due_date=past))]
        results = store.upsert_many(reqs, actor="gen")
        ids = {r.item["dedupe_key"]: r.item["id"] for r in results}
        store.set_status(ids["p0-done"], Status.DONE, actor="t")
        late_p0 = sorted(ids[f"p0-{i}"] for i in range(7))
        assert store.overdue_ids("prod", "P0", limit=5) == (7, late_p0[:5])
        assert store.overdue_ids("prod", "P0", limit=0) == (7, [])
        assert store.overdue_ids("prod", None, limit=100) == (8, sorted([*late_p0, ids["p1-late"]]))
        assert store.overdue_ids(None, "P0", limit=100) == (8, sorted([*late_p0, ids["p0-staging"]]))
        assert store.overdue_ids("nowhere", "P0", limit=5) == (0, [])


class TestCleanup:
    def test_retention_boundaries(self, store: BacklogStore, clock: FixedClock, backend: str) -> None:
        start = clock.now()
        ids = {}
        for key, status, age in [("done181", Status.DONE, 181), ("done179", Status.DONE, 179),
                                 ("canceled200", Status.CANCELED, 200), ("open400", None, 400),
                                 ("blocked300", Status.BLOCKED, 300)]:
            clock.set(start - timedelta(days=age))
            ids[key] = store.upsert(item(key), actor="gen").item["id"]
            if status is not None:
                store.set_status(ids[key], status, actor="t")
        clock.set(start)
        if backend == "auto-degraded":  # cleanup waits for Postgres: the fallback is not the truth
            assert store.cleanup(180) == 0 and len(store.list(ItemQuery()).items) == 5
            return
        assert store.cleanup(180) == 2
        remaining = {r["dedupe_key"] for r in store.list(ItemQuery()).items}
        assert remaining == {"done179", "open400", "blocked300"}
        with pytest.raises(NotFound):
            store.events(ids["done181"])
        assert event_types(store, ids["done179"]) == ["created", "status_changed"]
        assert store.cleanup(180) == 0


def jsonl_sizes(store: BacklogStore) -> tuple[int, int] | None:
    directory = getattr(store, "directory", None)
    if directory is None:
        return None
    return ((directory / "items.jsonl").stat().st_size, (directory / "events.jsonl").stat().st_size)
