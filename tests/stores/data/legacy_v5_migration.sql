-- The SQL that ops/scripts/migrate_backlog_postgres.py ran on an empty database before the steps
-- became numbered .sql files (its --dry-run output at schema version 5, captured from commit 5bec7af).
-- tests/stores/test_pg_migrations.py loads it to stand for a database migrated by that code.
BEGIN;
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS backlog_items (
    id            text COLLATE "C" PRIMARY KEY,
    env           text COLLATE "C" NOT NULL,
    service       text COLLATE "C" NOT NULL,
    category      text COLLATE "C" NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    priority      text COLLATE "C" NOT NULL CHECK (priority IN ('P0', 'P1', 'P2', 'P3')),
    status        text COLLATE "C" NOT NULL
                  CHECK (status IN ('open', 'in_progress', 'blocked', 'done', 'canceled')),
    owner         text COLLATE "C" NOT NULL,
    due_date      date,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    source        text NOT NULL,
    dedupe_key    text COLLATE "C" NOT NULL,
    evidence_refs jsonb NOT NULL DEFAULT '[]'::jsonb,
    tags          jsonb NOT NULL DEFAULT '[]'::jsonb,
    meta          jsonb NOT NULL DEFAULT '{}'::jsonb,
    rev           integer NOT NULL DEFAULT 1,
    CONSTRAINT backlog_items_dedupe_key_key UNIQUE (dedupe_key)
);
CREATE TABLE IF NOT EXISTS backlog_events (
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    id       text COLLATE "C" PRIMARY KEY,
    item_id  text COLLATE "C" NOT NULL REFERENCES backlog_items (id) ON DELETE CASCADE,
    ts       timestamptz NOT NULL,
    type     text NOT NULL,
    actor    text NOT NULL,
    message  text NOT NULL DEFAULT '',
    meta     jsonb NOT NULL DEFAULT '{}'::jsonb,
    item_rev integer
);
CREATE TABLE IF NOT EXISTS backlog_applied_ops (
    op_id      text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL,
    outcome    text NOT NULL,
    applied_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS backlog_items_env_status_idx ON backlog_items (env, status);
CREATE INDEX IF NOT EXISTS backlog_items_service_idx ON backlog_items (service);
CREATE INDEX IF NOT EXISTS backlog_items_due_date_idx ON backlog_items (due_date);
CREATE INDEX IF NOT EXISTS backlog_items_owner_idx ON backlog_items (owner);
CREATE INDEX IF NOT EXISTS backlog_items_category_idx ON backlog_items (category);
CREATE INDEX IF NOT EXISTS backlog_events_item_id_idx ON backlog_events (item_id, seq);
CREATE INDEX IF NOT EXISTS backlog_events_ts_idx ON backlog_events (ts);
CREATE INDEX IF NOT EXISTS backlog_items_env_status_priority_idx ON backlog_items (env, status, priority);
CREATE INDEX IF NOT EXISTS backlog_items_active_due_idx ON backlog_items (env, due_date) WHERE status IN ('open', 'in_progress', 'blocked');
CREATE INDEX IF NOT EXISTS backlog_items_active_service_idx ON backlog_items (env, service) WHERE status IN ('open', 'in_progress', 'blocked');
CREATE INDEX IF NOT EXISTS backlog_items_closed_updated_idx ON backlog_items (updated_at) WHERE status IN ('done', 'canceled');
CREATE INDEX IF NOT EXISTS backlog_applied_ops_applied_at_idx ON backlog_applied_ops (applied_at);
CREATE TABLE IF NOT EXISTS signals (
    kind        text        NOT NULL,
    id          text        NOT NULL,
    env         text        NOT NULL,
    service     text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    data        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS signals_env_service_kind_idx ON signals (env, service, kind, occurred_at);
CREATE INDEX IF NOT EXISTS signals_kind_occurred_idx ON signals (kind, occurred_at);
CREATE TABLE IF NOT EXISTS risk_snapshots (
    env         text             NOT NULL,
    service     text             NOT NULL,
    slot        timestamptz      NOT NULL,
    score       double precision NOT NULL CHECK (score >= 0 AND score <= 100),
    band        text             NOT NULL,
    parts       jsonb            NOT NULL,
    computed_at timestamptz      NOT NULL,
    PRIMARY KEY (env, service, slot)
);
CREATE INDEX IF NOT EXISTS risk_snapshots_slot_idx ON risk_snapshots (slot);
CREATE TABLE IF NOT EXISTS job_runs (
    job          TEXT        NOT NULL,
    slot         TIMESTAMPTZ NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    tool         TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    host         TEXT,
    pid          INTEGER,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    duration_ms  INTEGER,
    summary      TEXT,
    error        TEXT,
    result       JSONB,
    PRIMARY KEY (job, slot)
);
CREATE INDEX IF NOT EXISTS job_runs_slot_idx ON job_runs (slot DESC);
CREATE INDEX IF NOT EXISTS job_runs_running_idx ON job_runs (job, slot) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS backlog_counts (
    env  text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    a    text COLLATE "C" NOT NULL,
    b    text COLLATE "C" NOT NULL,
    n    bigint NOT NULL,
    PRIMARY KEY (env, kind, a, b)
);
CREATE INDEX IF NOT EXISTS backlog_counts_top_idx ON backlog_counts (env, kind, n DESC, a);
CREATE INDEX IF NOT EXISTS backlog_items_active_due_rank_idx ON backlog_items (env, due_date, priority, id) WHERE status IN ('open', 'in_progress', 'blocked');
CREATE OR REPLACE FUNCTION backlog_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
    UNION ALL
    SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', 1 FROM new_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
    UNION ALL
    SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', 1 FROM new_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL UNION ALL 
    SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
    UNION ALL
    SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', -1 FROM old_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
    UNION ALL
    SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', -1 FROM old_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        DELETE FROM backlog_counts;
    END IF;
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS backlog_counts_ins ON backlog_items;
CREATE TRIGGER backlog_counts_ins AFTER INSERT ON backlog_items REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
DROP TRIGGER IF EXISTS backlog_counts_upd ON backlog_items;
CREATE TRIGGER backlog_counts_upd AFTER UPDATE ON backlog_items REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
DROP TRIGGER IF EXISTS backlog_counts_del ON backlog_items;
CREATE TRIGGER backlog_counts_del AFTER DELETE ON backlog_items REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
DROP TRIGGER IF EXISTS backlog_counts_trunc ON backlog_items;
CREATE TRIGGER backlog_counts_trunc AFTER TRUNCATE ON backlog_items FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
DO $do$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 4) THEN
        LOCK TABLE backlog_items IN SHARE MODE;
        DELETE FROM backlog_counts;
        INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM backlog_items
    UNION ALL
    SELECT env, 'v', service, '', 1 FROM backlog_items WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', 1 FROM backlog_items
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
END $do$;
CREATE UNLOGGED TABLE IF NOT EXISTS backlog_counts_pending (
    tx    xid8    NOT NULL,
    env   text COLLATE "C" NOT NULL,
    kind  text COLLATE "C" NOT NULL,
    a     text COLLATE "C" NOT NULL,
    b     text COLLATE "C" NOT NULL,
    n     bigint  NOT NULL,
    flush boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS backlog_counts_pending_tx_idx ON backlog_counts_pending (tx);
CREATE UNIQUE INDEX IF NOT EXISTS backlog_counts_pending_flush_idx ON backlog_counts_pending (tx) WHERE flush;
CREATE OR REPLACE FUNCTION backlog_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
    UNION ALL
    SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', 1 FROM new_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
    UNION ALL
    SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', 1 FROM new_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL UNION ALL 
    SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
    UNION ALL
    SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', -1 FROM old_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
    SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
    UNION ALL
    SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
    UNION ALL
    SELECT env, 'd', to_char(due_date, 'YYYY-MM-DD'), '', -1 FROM old_rows
        WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0;
    ELSE
        DELETE FROM backlog_counts;
        DELETE FROM backlog_counts_pending WHERE tx = pg_current_xact_id() AND NOT flush;
        RETURN NULL;
    END IF;
    IF FOUND THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n, flush) VALUES (pg_current_xact_id(), '', '', '', '', 0, true)
            ON CONFLICT (tx) WHERE flush DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION backlog_counts_flush() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    WITH gone AS (DELETE FROM backlog_counts_pending WHERE tx = NEW.tx RETURNING env, kind, a, b, n)
    INSERT INTO backlog_counts AS c (env, kind, a, b, n)
        SELECT env, kind, a, b, sum(d) FROM (SELECT env, kind, a, b, n AS d FROM gone) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0 ORDER BY env, kind, a, b
        ON CONFLICT (env, kind, a, b) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS backlog_counts_flush ON backlog_counts_pending;
CREATE CONSTRAINT TRIGGER backlog_counts_flush AFTER INSERT ON backlog_counts_pending DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.flush) EXECUTE FUNCTION backlog_counts_flush();
INSERT INTO schema_migrations (version, name) VALUES (1, 'backlog_items_and_events');
INSERT INTO schema_migrations (version, name) VALUES (2, 'signals_and_risk_snapshots');
INSERT INTO schema_migrations (version, name) VALUES (3, 'job_runs');
INSERT INTO schema_migrations (version, name) VALUES (4, 'backlog_dashboard_counts');
INSERT INTO schema_migrations (version, name) VALUES (5, 'backlog_counts_at_commit');
COMMIT;
