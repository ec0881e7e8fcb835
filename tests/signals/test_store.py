"""The signal store contract, on memory, JSONL and Postgres: same operations, same results."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.router.signals.store import RiskSnapshot, SignalStore, hour_slot
from services.router.signals.store_jsonl import JsonlSignalStore
from tests.signals.builders import BUILDERS, alert, deploy, incident, signals
from tests.signals.conftest import SignalStoreFactory

T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


def snap(service: str = "gateway", hours: int = 0, score: float = 40.0, env: str = "prod") -> RiskSnapshot:
    return RiskSnapshot(env=env, service=service, slot=T0 + timedelta(hours=hours), score=score, band="medium",
                        parts={"incidents": score}, computed_at=T0 + timedelta(hours=hours, minutes=5))


def test_upsert_by_kind_and_id(signal_store: SignalStore) -> None:
    everything = signals(*(build() for build in BUILDERS.values()))
    first = signal_store.upsert_many(everything)
    assert (first.created, first.updated, first.unchanged) == (6, 0, 0)
    again = signal_store.upsert_many(signals(*(build() for build in BUILDERS.values())))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 6)
    changed = signal_store.upsert_many(signals(incident(status="mitigated"), incident("INC-2")))
    assert (changed.created, changed.updated, changed.unchanged) == (1, 1, 0)
    assert [(k, a) for k, _, a in changed.actions] == [("incident", "updated"), ("incident", "created")]
    stored = {s.id: s for s in signal_store.query(kinds=["incident"])}
    assert getattr(stored["INC-1"], "status") == "mitigated"  # noqa: B009
    assert len(signal_store.query()) == 7


def test_same_id_in_two_kinds_are_two_signals(signal_store: SignalStore) -> None:
    signal_store.upsert_many(signals(incident("X-1"), deploy("X-1")))
    assert sorted(s.kind_name for s in signal_store.query()) == ["deploy", "incident"]


def test_duplicates_in_one_batch_last_wins(signal_store: SignalStore) -> None:
    out = signal_store.upsert_many(signals(incident(severity="sev3"), incident(severity="sev1")))
    assert (out.created, out.updated) == (1, 0)
    (stored,) = signal_store.query()
    assert getattr(stored, "severity") == "sev1"  # noqa: B009


def test_dry_run_writes_nothing(signal_store: SignalStore) -> None:
    out = signal_store.upsert_many(signals(incident()), dry_run=True)
    assert out.created == 1
    assert signal_store.query() == []


def test_query_filters(signal_store: SignalStore) -> None:
    signal_store.upsert_many(signals(
        incident("A", started_at="2026-11-20T00:00:00Z"),
        incident("B", env="staging", started_at="2026-11-21T00:00:00Z"),
        incident("C", service="auth", started_at="2026-11-22T00:00:00Z"),
        deploy("D", at="2026-11-23T00:00:00Z"),
    ))
    assert [s.id for s in signal_store.query(env="prod")] == ["A", "C", "D"]
    assert [s.id for s in signal_store.query(service="auth")] == ["C"]
    assert [s.id for s in signal_store.query(kinds=["deploy"])] == ["D"]
    window = signal_store.query(since=datetime(2026, 11, 21, tzinfo=UTC), until=datetime(2026, 11, 22, tzinfo=UTC))
    assert [s.id for s in window] == ["B", "C"], "both ends are inclusive"
    assert signal_store.services() == [("prod", "auth"), ("prod", "gateway"), ("staging", "gateway")]
    assert signal_store.services("staging") == [("staging", "gateway")]


def test_snapshots_replace_within_the_hour(signal_store: SignalStore) -> None:
    assert signal_store.put_snapshots([snap(), snap("auth")]) == 2
    assert signal_store.put_snapshots([snap(), snap("auth")]) == 0, "same scores: nothing written"
    assert signal_store.put_snapshots([snap(score=55.0)]) == 1
    stored = signal_store.snapshots(service="gateway")
    assert [(s.slot, s.score) for s in stored] == [(T0, 55.0)]


def test_snapshots_by_period_and_cleanup(signal_store: SignalStore) -> None:
    signal_store.put_snapshots([snap(hours=h, score=float(48 + h)) for h in range(-48, 1)] + [snap("auth", -30)])
    period = signal_store.snapshots(env="prod", service="gateway", since=T0 - timedelta(hours=2), until=T0)
    assert [s.score for s in period] == [46.0, 47.0, 48.0]
    assert [s.slot for s in period] == [T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0]
    cutoff = T0 - timedelta(hours=24)
    assert signal_store.count_snapshots_before(cutoff) == 25
    assert signal_store.delete_snapshots_before(cutoff) == 25
    assert signal_store.count_snapshots_before(cutoff) == 0
    remaining = signal_store.snapshots()
    assert len(remaining) == 25 and min(s.slot for s in remaining) == cutoff


def test_reopen_sees_the_same_data(make_signal_store: SignalStoreFactory) -> None:
    first = make_signal_store()
    first.upsert_many(signals(incident(), alert()))
    first.put_snapshots([snap()])
    second = make_signal_store()
    assert sorted(s.key for s in second.query()) == [("alert", "fp-1"), ("incident", "INC-1")]
    assert second.snapshots() == [snap()]
    second.upsert_many(signals(incident(status="mitigated")))
    second.delete_snapshots_before(T0 + timedelta(hours=1))
    assert getattr(first.query(kinds=["incident"])[0], "status") == "mitigated"  # noqa: B009
    assert first.snapshots() == [], "a compaction by another writer is noticed"


def test_hour_slot() -> None:
    assert hour_slot(datetime(2026, 11, 26, 12, 59, 59, tzinfo=UTC)) == datetime(2026, 11, 26, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="on the hour"):
        RiskSnapshot(env="prod", service="x", slot=T0 + timedelta(minutes=1), score=1, band="low",
                     computed_at=T0)


# -- JSONL specifics --------------------------------------------------------------------------
def jsonl(root: Path) -> JsonlSignalStore:
    return JsonlSignalStore(root / "ops" / "signals", root / "ops" / "risk")


def test_jsonl_resend_adds_no_byte(root: Path) -> None:
    store = jsonl(root)
    store.upsert_many(signals(incident(), alert()))
    path = root / "ops" / "signals" / "signals.jsonl"
    size = path.stat().st_size
    store.upsert_many(signals(incident(), alert()))
    jsonl(root).upsert_many(signals(incident(), alert()))
    assert path.stat().st_size == size


def test_jsonl_torn_tail_and_garbage_are_skipped(root: Path) -> None:
    store = jsonl(root)
    store.upsert_many(signals(incident()))
    path = root / "ops" / "signals" / "signals.jsonl"
    with path.open("ab") as fh:
        fh.write(b'{"kind": "incident", "id": "BAD", "env": "PROD"}\nnot json\n{"kind": "deploy", "id"')
    reader = jsonl(root)
    assert [s.id for s in reader.query()] == ["INC-1"]
    reader.upsert_many(signals(deploy()))  # the writer cuts the torn tail before appending
    assert sorted(s.id for s in jsonl(root).query()) == ["DEP-1", "INC-1"]
    assert path.read_bytes().endswith(b"\n")


def test_jsonl_cleanup_rewrites_atomically(root: Path) -> None:
    store = jsonl(root)
    store.put_snapshots([snap(hours=h) for h in range(-5, 1)])
    store.put_snapshots([snap(score=70.0)])
    path = root / "ops" / "risk" / "snapshots.jsonl"
    inode = path.stat().st_ino
    assert store.delete_snapshots_before(T0 - timedelta(hours=2)) == 3
    assert path.stat().st_ino != inode, "replaced by rename, not rewritten in place"
    assert len(path.read_text().splitlines()) == 3, "superseded versions are dropped too"
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]
    assert [s.score for s in jsonl(root).snapshots()] == [40.0, 40.0, 70.0]
    assert os.access(path, os.R_OK)
