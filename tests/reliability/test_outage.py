"""Database outage under load (CI tier) and the regressions it found in the Auto store.

The full counts (several outages, longer) run in ``make reliability``.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from services.router.clock import FixedClock
from services.router.domain.enums import Status
from services.router.errors import StoreUnavailable
from services.router.settings import Settings
from services.router.stores.auto import AutoBacklogStore
from tests.factories import item
from tests.pg_support import ThrowawayCluster, migrate
from tests.reliability import outage

pytestmark = pytest.mark.postgres
SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))


def test_outage_under_http_load_loses_nothing(cluster: ThrowawayCluster, tmp_path: Path) -> None:
    print(f"seed={SEED}")
    figures = outage.run(tmp_path, clients=4, keys_per_client=10, outages=1, up_seconds=1.5, down_seconds=2.0,
                         seed=SEED, cluster=cluster)
    assert figures.misses() == {}, figures.notes[:10]
    assert figures.outages == 1 and len(figures.recovery_seconds) == 1
    assert figures.writes_during_outages > 0  # the outage saw writes, not only waiting clients
    assert figures.failed == figures.failed_503_retry_after
    assert figures.recovery_seconds[0] < 15


# -- regressions: the fallback's copy of an item from an earlier outage is stale -------------------
APP_USER, DB, PASSWORD = "bb_regress", "bb_regress_db", "regress-pw-3b7f1c2d9e"


@pytest.fixture
def dsn(cluster: ThrowawayCluster) -> str:
    exists = cluster.admin(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'")[0]
    url = cluster.dsn(APP_USER, PASSWORD, DB)
    if not exists:
        cluster.create_app_database(APP_USER, PASSWORD, DB)
        migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE backlog_items, backlog_events, backlog_applied_ops CASCADE")
    return url


def open_auto(dsn: str, tmp_path: Path, clock: FixedClock) -> AutoBacklogStore:
    settings = Settings(BACKLOG_POSTGRES_DSN=dsn, POSTGRES_DSN=None, BACKLOG_JSONL_DIR=str(tmp_path / "backlog"),
                        BACKLOG_PG_RETRY_SECONDS=300, BACKLOG_PG_CONNECT_TIMEOUT_SECONDS=1)
    return AutoBacklogStore(settings, clock=clock)


def pg_status(dsn: str, key: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM backlog_items WHERE dedupe_key = %s", (key,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_copy_left_from_an_earlier_outage_is_not_trusted(cluster: ThrowawayCluster, dsn: str, tmp_path: Path,
                                                           clock: FixedClock) -> None:
    """Found by the outage run: an item created in outage 1 and moved on Postgres afterwards was
    judged by its stale fallback copy in outage 2 — an acknowledged "unchanged" Postgres never
    saw, or a 409 for a move Postgres allows. Now such a move waits for Postgres (503)."""
    store = open_auto(dsn, tmp_path, clock)
    try:
        cluster.stop()
        b = store.upsert(item("k-b"), actor="gen").item  # created on the fallback
        store.set_status(b["id"], Status.BLOCKED, actor="bob")
        cluster.start()
        assert store.try_recover()
        store.set_status(b["id"], Status.OPEN, actor="bob")  # on Postgres; the fallback still says blocked
        cluster.stop()
        store.upsert(item("k-other"), actor="gen")  # the store notices the outage
        with pytest.raises(StoreUnavailable) as refused:
            store.set_status(b["id"], Status.BLOCKED, actor="bob")
        assert refused.value.details.get("id") == b["id"]
        with pytest.raises(StoreUnavailable):
            store.add_comment(b["id"], "note", actor="bob")
    finally:
        if not cluster.running:
            cluster.start()
    try:
        assert store.try_recover()
        store.set_status(b["id"], Status.BLOCKED, actor="bob")  # the retry, once Postgres is back
        assert pg_status(dsn, "k-b") == "blocked"
    finally:
        store.close()


def test_a_move_to_the_fallbacks_own_status_still_reaches_postgres(cluster: ThrowawayCluster, dsn: str,
                                                                   tmp_path: Path, clock: FixedClock) -> None:
    """An upsert during the outage of a key Postgres holds makes a fresh fallback copy (open); a
    move to ``open`` on it is a no-op there but not in Postgres: it is journaled and replayed."""
    store = open_auto(dsn, tmp_path, clock)
    try:
        a = store.upsert(item("k-a"), actor="gen").item
        store.set_status(a["id"], Status.IN_PROGRESS, actor="alice")
        cluster.stop()
        copy = store.upsert(item("k-a", title="Retitled during the outage"), actor="gen").item
        assert copy["status"] == "open"
        store.set_status(copy["id"], Status.OPEN, actor="alice")
    finally:
        cluster.start()
    try:
        assert store.try_recover()
        assert pg_status(dsn, "k-a") == "open"
    finally:
        store.close()
