"""A Postgres backlog shaped like two years of use, for the trends row (issue 22).

``pg_bench.fill`` gives every item one event and one creation time span: enough for the
dashboard, but trends look at status changes, due-date changes and when items were created and
closed. Here, in SQL only (``generate_series``, no rows travel from Python), items are created
evenly over 104 weeks before ``NOW`` in five envs (prod holds 2 of 5), and each item has five
events as the product writes them: ``created``, ``status_changed`` open -> in_progress,
``updated`` (every 7th item a ``due_date_changed`` instead), ``commented``, and a last one: most
items close (done, or canceled for every 6th) 3 to 62 days after creation, every 20th is blocked
and never closes, and an item whose closing day is still ahead stays in progress (a comment).
Event times are capped at ``NOW``. Secondary indexes of every step are built after the load.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from bench.pg_bench import NOW
from services.router.stores.pg_schema import STEPS, migrate, object_of

SHAPE = """
CREATE UNLOGGED TABLE bench_shape AS
SELECT g, 'bl_' || lpad(to_hex(g), 24, '0') AS id,
    (ARRAY['prod', 'prod', 'staging', 'dev', 'qa'])[1 + g %% 5] AS env,
    c, least(c + (3 + (g * 37) %% 60) * interval '1 day' + (g %% 24) * interval '1 hour', %(now)s) AS close_at,
    g %% 20 = 0 AS never, g %% 7 = 3 AS due_moved, (c + interval '30 days')::date AS due0,
    (c + interval '44 days')::date AS due1,
    (ARRAY['P0', 'P1', 'P2', 'P3'])[1 + (g / 3) %% 4] AS priority
FROM generate_series(0, %(items)s - 1) AS g,
    LATERAL (SELECT %(now)s::timestamptz - interval '728 days'
                    + g * (728 * 86400.0 / %(items)s) * interval '1 second' AS c) AS t
"""
FINAL = """
UPDATE bench_shape SET final = CASE WHEN never THEN 'blocked' WHEN close_at >= %(now)s THEN 'in_progress'
                                    WHEN g %% 6 = 0 THEN 'canceled' ELSE 'done' END
"""
ITEMS = """
INSERT INTO backlog_items (id, env, service, category, title, description, priority, status, owner, due_date,
    created_at, updated_at, source, dedupe_key, evidence_refs, tags, meta, rev)
SELECT id, env, 'svc' || (g::bigint * 7919 %% 2000),
    (ARRAY['arch_review', 'security', 'slo_hardening', 'followup_debt', 'deploy_safety'])[1 + (g / 4) %% 5],
    'Investigate recurring pressure on service ' || g, 'Signals: ' || repeat('x', 180), priority, final,
    'team' || (g %% 50), CASE WHEN due_moved THEN due1 ELSE due0 END, c,
    least(CASE WHEN final IN ('done', 'canceled') THEN close_at ELSE c + interval '3 days' END, %(now)s),
    'weekly_pressure_digest', 'bench:' || g, jsonb_build_array('INC-' || g), '["weekly-digest"]'::jsonb,
    jsonb_build_object('pressure_score', g %% 100), 5
FROM bench_shape
"""
EVENTS = """
INSERT INTO backlog_events (id, item_id, ts, type, actor, message, meta, item_rev)
SELECT 'ev_' || lpad(to_hex(s.g), 24, '0') || '_' || v.p, s.id, least(v.ts, %(now)s), v.type, 'bench', v.message,
    v.meta, v.p
FROM bench_shape s, LATERAL (VALUES
    (1, s.c, 'created', 'created: item ' || s.g,
     jsonb_build_object('owner', 'team' || (s.g %% 50), 'priority', s.priority, 'source', 'weekly_pressure_digest')),
    (2, s.c + interval '1 day', 'status_changed', 'open -> in_progress',
     '{"from": "open", "to": "in_progress"}'::jsonb),
    (3, s.c + interval '2 days', CASE WHEN s.due_moved THEN 'due_date_changed' ELSE 'updated' END,
     CASE WHEN s.due_moved THEN 'due date moved' ELSE 'updated title' END,
     CASE WHEN s.due_moved THEN jsonb_build_object('from', s.due0::text, 'to', s.due1::text)
          ELSE '{"fields": ["title"]}'::jsonb END),
    (4, s.c + interval '60 hours', 'commented', 'looking into it', '{}'::jsonb),
    (5, CASE WHEN s.final IN ('done', 'canceled') THEN s.close_at ELSE s.c + interval '3 days' END,
     CASE WHEN s.final = 'in_progress' THEN 'commented' ELSE 'status_changed' END,
     'in_progress -> ' || s.final,
     CASE WHEN s.final = 'in_progress' THEN '{}'::jsonb
          ELSE jsonb_build_object('from', 'in_progress', 'to', s.final) END)
) AS v(p, ts, type, message, meta)
"""


def secondary_indexes() -> list[str]:
    """Every step's CREATE INDEX on the items and events tables, as the migrations define them."""
    return [s for step in STEPS for s in step.statements
            if s.startswith("CREATE INDEX") and (" ON backlog_items " in s or " ON backlog_events " in s)]


def fill(dsn: str, items: int) -> None:
    """Schema, ``items`` items with five events each, indexes built after the load, VACUUM ANALYZE."""
    statements = secondary_indexes()
    params = {"items": items, "now": NOW}
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        for name in [obj[1] for s in statements if (obj := object_of(s))]:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute(SHAPE, params)
        conn.execute("ALTER TABLE bench_shape ADD COLUMN final text")
        conn.execute(FINAL, params)
        conn.execute(ITEMS, params)
        with conn.transaction():
            # Every event's item exists (it was written from the same rows): skip 5 FK checks per item.
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(EVENTS, params)
        conn.execute("DROP TABLE bench_shape")
        for statement in statements:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE backlog_items")
        conn.execute("VACUUM ANALYZE backlog_events")
