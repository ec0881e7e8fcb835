-- Step 1: the backlog (RUNBOOK §2): items, their audit events, and the Auto store's applied ops.
--
-- COLLATE "C" on the columns we order or page by: byte order, as Python compares strings, so
-- keyset cursors and tie-breaks agree with the in-memory backends.
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

-- seq keeps write order (event ids are only ordered within one process).
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

-- Operations of the Auto store already applied here (same transaction as their effect), so a
-- replay of the JSONL fallback's journal applies each operation exactly once.
CREATE TABLE IF NOT EXISTS backlog_applied_ops (
    op_id      text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL,
    outcome    text NOT NULL,
    applied_at timestamptz NOT NULL
);

-- The runbook's indexes: env+status, service, due_date, owner, category, item_id, ts.
CREATE INDEX IF NOT EXISTS backlog_items_env_status_idx ON backlog_items (env, status);
CREATE INDEX IF NOT EXISTS backlog_items_service_idx ON backlog_items (service);
CREATE INDEX IF NOT EXISTS backlog_items_due_date_idx ON backlog_items (due_date);
CREATE INDEX IF NOT EXISTS backlog_items_owner_idx ON backlog_items (owner);
CREATE INDEX IF NOT EXISTS backlog_items_category_idx ON backlog_items (category);
CREATE INDEX IF NOT EXISTS backlog_events_item_id_idx ON backlog_events (item_id, seq);
CREATE INDEX IF NOT EXISTS backlog_events_ts_idx ON backlog_events (ts);

-- The dashboard's: counts by status/priority, overdue and top services over active items.
CREATE INDEX IF NOT EXISTS backlog_items_env_status_priority_idx ON backlog_items (env, status, priority);
CREATE INDEX IF NOT EXISTS backlog_items_active_due_idx ON backlog_items (env, due_date)
    WHERE status IN ('open', 'in_progress', 'blocked');
CREATE INDEX IF NOT EXISTS backlog_items_active_service_idx ON backlog_items (env, service)
    WHERE status IN ('open', 'in_progress', 'blocked');

-- Retention: cleanup finds expired closed items without scanning the open ones.
CREATE INDEX IF NOT EXISTS backlog_items_closed_updated_idx ON backlog_items (updated_at)
    WHERE status IN ('done', 'canceled');
CREATE INDEX IF NOT EXISTS backlog_applied_ops_applied_at_idx ON backlog_applied_ops (applied_at);
