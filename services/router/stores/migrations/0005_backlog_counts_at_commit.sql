-- Step 5: counters are changed once per transaction, at COMMIT, in one sorted statement.
--
-- Step 4's triggers changed them statement by statement; each statement's rows were sorted, but
-- a transaction runs several (a batch's parts, a small batch's rows), so two writers could lock
-- counter rows in opposite orders across statements: "deadlock detected" between writers of
-- different keys. Now each statement only records its deltas in backlog_counts_pending (rows of
-- its own transaction, tagged with its id); the first of them also adds a "flush" marker row,
-- whose deferred constraint trigger runs at COMMIT and moves the transaction's deltas into
-- backlog_counts in one INSERT ... ORDER BY (env, kind, a, b). Every transaction thus locks its
-- counter rows in one global order, as its last act. Nothing to backfill: the counters are
-- right, and a transaction still running on step 4's function has counted its own rows already.
--
-- UNLOGGED: a pending row lives within its transaction; after a crash there is nothing to keep.
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
-- One marker per transaction (ON CONFLICT DO NOTHING queues no trigger): one flush per COMMIT.
CREATE UNIQUE INDEX IF NOT EXISTS backlog_counts_pending_flush_idx ON backlog_counts_pending (tx) WHERE flush;

-- Replaces step 4's function; step 4's triggers call it.
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
                WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL
            UNION ALL
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
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n, flush)
            VALUES (pg_current_xact_id(), '', '', '', '', 0, true)
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

CREATE CONSTRAINT TRIGGER backlog_counts_flush AFTER INSERT ON backlog_counts_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.flush) EXECUTE FUNCTION backlog_counts_flush();
