"""Postgres backend against its physical floors (issue 10), in a scratch database.

The scratch database (``backlog_bench`` by default) is created for the run and dropped after it;
the table is filled server-side with ``generate_series`` (no rows travel from Python), with the
secondary indexes built after the load, then vacuumed and analyzed as a live table would be.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.common import Report, interleaved, ratio_row
from services.router.clock import FixedClock
from services.router.domain.changes import Change, plan_upsert
from services.router.domain.models import ItemInput
from services.router.stores import pg_sql as q
from services.router.stores.base import UpsertRequest
from services.router.stores.pg_schema import STEPS, migrate, object_of
from services.router.stores.postgres import PostgresBacklogStore

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SCRATCH_DB = os.environ.get("BENCH_PG_DB", "backlog_bench")
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

FILL_ITEMS = """
INSERT INTO backlog_items (id, env, service, category, title, description, priority, status, owner, due_date,
    created_at, updated_at, source, dedupe_key, evidence_refs, tags, meta, rev)
SELECT 'bl_' || lpad(to_hex(g), 24, '0'),
    (ARRAY['prod', 'prod', 'staging', 'dev'])[1 + g %% 4],
    'svc' || (g::bigint * 7919 %% 5000),
    (ARRAY['arch_review', 'security', 'slo_hardening', 'followup_debt', 'deploy_safety'])[1 + (g / 4) %% 5],
    'Investigate recurring pressure on service ' || g,
    'Signals: ' || repeat('x', 180),
    (ARRAY['P0', 'P1', 'P2', 'P3'])[1 + (g / 3) %% 4],
    (ARRAY['open', 'in_progress', 'blocked', 'done', 'canceled', 'done', 'open'])[1 + (g / 7) %% 7],
    'team' || (g %% 50),
    date '2026-09-01' + (g %% 150),
    timestamptz '2026-01-01' + g * interval '20 seconds',
    timestamptz '2026-01-01' + g * interval '20 seconds',
    'weekly_pressure_digest',
    'bench:' || g,
    jsonb_build_array('INC-' || g), '["weekly-digest"]'::jsonb,
    jsonb_build_object('pressure_score', g %% 100, 'digest_week', '2026-W45'),
    1
FROM generate_series(0, %s - 1) AS g
"""
FILL_EVENTS = """
INSERT INTO backlog_events (id, item_id, ts, type, actor, message, meta, item_rev)
SELECT 'ev_' || substr(id, 4), id, created_at, 'created', 'bench', 'created: ' || title,
    jsonb_build_object('owner', owner, 'priority', priority, 'source', source), 1
FROM backlog_items
"""
FLOOR_TEMP = """
CREATE TEMP TABLE bench_stage (LIKE backlog_items INCLUDING DEFAULTS) ON COMMIT DROP
"""
FLOOR_MERGE = """
INSERT INTO backlog_items SELECT * FROM bench_stage
ON CONFLICT (dedupe_key) DO UPDATE SET
    env = EXCLUDED.env, service = EXCLUDED.service, category = EXCLUDED.category, title = EXCLUDED.title,
    description = EXCLUDED.description, priority = EXCLUDED.priority, status = EXCLUDED.status,
    owner = EXCLUDED.owner, due_date = EXCLUDED.due_date, updated_at = EXCLUDED.updated_at,
    source = EXCLUDED.source, evidence_refs = EXCLUDED.evidence_refs, tags = EXCLUDED.tags,
    meta = EXCLUDED.meta, rev = EXCLUDED.rev
"""
ITEM_COPY = f"COPY bench_stage ({q.ITEM_COLUMN_NAMES}) FROM STDIN"  # the columns of q.item_row
EVENT_COPY = "COPY backlog_events (id, item_id, ts, type, actor, message, meta, item_rev, on_behalf_of) FROM STDIN"
SEQ_SCAN_COUNT = "SELECT count(*) FROM backlog_items"


@contextmanager
def scratch_database(admin_dsn: str = ADMIN_DSN, name: str = SCRATCH_DB) -> Iterator[str]:
    """A fresh database for the run, dropped afterwards (also when the run fails)."""
    ident = sql.Identifier(name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        yield make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def fill(dsn: str, rows: int) -> None:
    """Schema, ``rows`` items with one event each, indexes built after the load, VACUUM ANALYZE."""
    secondary = [s for s in STEPS[0].statements if s.startswith("CREATE INDEX")]  # step 1's, from its file
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        for name in [obj[1] for s in secondary if (obj := object_of(s))]:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute(FILL_ITEMS, (rows,))
        conn.execute(FILL_EVENTS)
        for statement in secondary:  # built once over the loaded rows, as the migration defines them
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE backlog_items")
        conn.execute("VACUUM ANALYZE backlog_events")


def batch_inputs(existing: Sequence[int], new: Sequence[str]) -> list[ItemInput]:
    """A generation-like batch: updates of existing items (a new title) and new items."""
    out = [ItemInput(env="prod", service=f"svc{g * 7919 % 5000}", category="arch_review",
                     title=f"Investigate recurring pressure on service {g} (again)",
                     description="Signals: " + "y" * 180,
                     dedupe_key=f"bench:{g}", evidence_refs=[f"INC-{g}"], tags=["weekly-digest"],
                     meta={"pressure_score": 71, "digest_week": "2026-W48"})
           for g in existing]
    out += [ItemInput(env="prod", service=f"svc{n % 5000}", category="security", priority="P0",
                      title=f"Close open critical vulnerabilities: {key}", description="Signals: " + "z" * 180,
                      due_date="2026-11-30", source="weekly_pressure_digest", dedupe_key=key,
                      evidence_refs=[f"CVE-{n}"], tags=["weekly-digest"], meta={"pressure_score": 90})
            for n, key in enumerate(new)]
    return out


def floor_changes(store: PostgresBacklogStore, inputs: Sequence[ItemInput]) -> list[Change]:
    """The rows the store would write for ``inputs`` (planned outside the timing)."""
    existing = store.get_many_by_dedupe_key([str(i.dedupe_key) for i in inputs])
    return [plan_upsert(existing.get(str(i.dedupe_key)), i, fallback_owner="oncall", now=NOW, actor="bench")
            for i in inputs]


def floor_write(conn: psycopg.Connection[Any], changes: Sequence[Change]) -> None:
    """COPY the item rows into a temp table and merge them; COPY their events; one transaction."""
    with conn.transaction():
        conn.execute(FLOOR_TEMP)
        with conn.cursor() as cur:
            with cur.copy(ITEM_COPY) as copy:
                for c in changes:
                    copy.write_row(q.item_row(c.item))
            cur.execute(FLOOR_MERGE)
            with cur.copy(EVENT_COPY) as copy:
                for c in changes:
                    if c.event is not None:
                        copy.write_row(q.event_row(c.event))


def bench_upsert(report: Report, store: PostgresBacklogStore, dsn: str, *, rows: int, batch: int,
                 repeat: int) -> None:
    """Half updates of existing rows, half new items; each run on keys no other run touched."""
    half = batch // 2
    if rows < 2 * repeat * half:
        raise SystemExit(f"--pg-rows {rows} too small for {repeat} runs of a {batch}-item batch")
    rounds = iter(range(repeat * 2))
    pending: dict[str, Any] = {}

    def setup() -> None:
        r = next(rounds)
        existing = range(r * half, (r + 1) * half)
        inputs = batch_inputs(existing, [f"bench-new:{r}:{n}" for n in range(batch - half)])
        pending["requests"] = [UpsertRequest(i) for i in inputs]
        pending["changes"] = floor_changes(store, inputs)

    def ours() -> None:
        results = store.upsert_many(pending["requests"], actor="bench")
        assert len(results) == batch and all(r.action != "unchanged" for r in results)

    with psycopg.connect(dsn, autocommit=True) as conn:
        ours_s, floor_s = interleaved(ours, lambda: floor_write(conn, pending["changes"]), repeat=repeat,
                                      setup=setup)
    report.add(ratio_row(f"Postgres generation upsert, {batch} items into {rows} rows", ours_s, floor_s,
                         goal_ratio=1.5, note="floor: COPY into temp + INSERT ON CONFLICT, COPY events"))


def bench_dashboard(report: Report, store: PostgresBacklogStore, dsn: str, *, rows: int, repeat: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        envs = conn.execute("SELECT env, count(*) FROM backlog_items GROUP BY env ORDER BY 2 DESC").fetchall()
        largest = envs[0][0]
        # The floor reads the whole table: no index may answer count(*) for it.
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            conn.execute(f"SET {setting} = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + SEQ_SCAN_COUNT).fetchall())
        assert "Seq Scan" in plan, plan
        for _ in range(2):  # warm both (buffers, plans)
            store.dashboard(largest)
            conn.execute(SEQ_SCAN_COUNT).fetchone()
        ours, floor = interleaved(lambda: store.dashboard(largest), lambda: conn.execute(SEQ_SCAN_COUNT).fetchone(),
                                  repeat=repeat)
    report.add(ratio_row(f"Postgres dashboard, {rows} rows, largest env ({largest})", ours, floor, goal_ratio=0.5,
                         note="floor: SELECT count(*) by a sequential scan"))


def run(report: Report, *, rows: int, batch: int, repeat: int) -> None:
    with scratch_database() as dsn:
        fill(dsn, rows)
        store = PostgresBacklogStore(dsn, clock=FixedClock(NOW))
        try:
            bench_dashboard(report, store, dsn, rows=rows, repeat=max(repeat, 5))
            # 9 alternated rounds: with 5, one slow round moved the median by 0.2x between runs.
            bench_upsert(report, store, dsn, rows=rows, batch=batch, repeat=max(repeat, 9))
        finally:
            store.close()
