-- Step 4: the dashboard's numbers, kept by statement triggers so reading them is O(1) in rows.
--
-- One row per (env, kind, a, b): kind 's' = (status, priority) of every item, 'v' = (service, '')
-- of active items, 'd' = (due date as YYYY-MM-DD, '') of active items with a due date. Writers
-- add deltas with INSERT ... ON CONFLICT DO UPDATE (n = n + delta), keys in sorted order; rows
-- that reach 0 are left in place and ignored by readers. (Step 5 replaces the trigger function:
-- counters now change once per transaction, at COMMIT.)
CREATE TABLE IF NOT EXISTS backlog_counts (
    env  text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    a    text COLLATE "C" NOT NULL,
    b    text COLLATE "C" NOT NULL,
    n    bigint NOT NULL,
    PRIMARY KEY (env, kind, a, b)
);

-- Top services of one env: the first rows of an index scan.
CREATE INDEX IF NOT EXISTS backlog_counts_top_idx ON backlog_counts (env, kind, n DESC, a);

-- The overdue list in its exact order (priorities P0..P3 sort as text): an index scan that
-- stops after the listed rows, however many items share the oldest due dates.
CREATE INDEX IF NOT EXISTS backlog_items_active_due_rank_idx ON backlog_items (env, due_date, priority, id)
    WHERE status IN ('open', 'in_progress', 'blocked');

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
                WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL
            UNION ALL
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

CREATE TRIGGER backlog_counts_ins AFTER INSERT ON backlog_items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
CREATE TRIGGER backlog_counts_upd AFTER UPDATE ON backlog_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
CREATE TRIGGER backlog_counts_del AFTER DELETE ON backlog_items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();
CREATE TRIGGER backlog_counts_trunc AFTER TRUNCATE ON backlog_items
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_counts_trigger();

-- Backfill from the items already there (writers wait meanwhile). The step runs once, in the
-- migration's transaction, right after the triggers exist: no write is counted twice or missed.
DO $do$ BEGIN
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
END $do$;
