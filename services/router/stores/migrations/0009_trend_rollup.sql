-- Step 9: the rollup of completed trend weeks (GET /v1/backlog/trends, stores/pg_trend_rollup.py).
--
-- One row per scope (env, service; '' for all) and completed ISO week: the five counts of
-- domain.trends, the events high-water mark (max seq) they were computed at and the cleanup
-- generation. A row is served only while no event written after its mark could change it.
CREATE TABLE IF NOT EXISTS backlog_trend_weeks (
    env            text COLLATE "C" NOT NULL,
    service        text COLLATE "C" NOT NULL,
    week_start     timestamptz NOT NULL,
    opened         integer     NOT NULL,
    closed         integer     NOT NULL,
    open_at_end    integer     NOT NULL,
    overdue_at_end integer     NOT NULL,
    p0_open_at_end integer     NOT NULL,
    events_mark    bigint      NOT NULL,
    generation     bigint      NOT NULL,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (env, service, week_start)
);
-- Bumped by every cleanup that removed items: rows of an older generation are not served.
CREATE TABLE IF NOT EXISTS backlog_trend_generation (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation bigint  NOT NULL
);
-- The events written after a mark (the validity probe reads only those).
CREATE INDEX IF NOT EXISTS backlog_events_seq_idx ON backlog_events (seq);
-- The current week's counts of the active items (pg_trend_rollup.CURRENT), read from the index alone.
CREATE INDEX IF NOT EXISTS backlog_items_active_trend_idx ON backlog_items (env, service)
    INCLUDE (created_at, priority, due_date, accepted_hold) WHERE status IN ('blocked', 'in_progress', 'open');
-- Emptying the events (TRUNCATE, also by CASCADE from the items) empties the rollup: its marks
-- would not see the events written after.
CREATE OR REPLACE FUNCTION backlog_trend_weeks_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM backlog_trend_weeks;
    RETURN NULL;
END
$$;
CREATE TRIGGER backlog_events_truncate_trend_weeks AFTER TRUNCATE ON backlog_events
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_trend_weeks_forget();
