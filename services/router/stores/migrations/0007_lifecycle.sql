-- Step 7: item lifecycle (issue 19): risk acceptance on items, the person behind an event.
--
-- backlog_items.accepted is the item's acceptance ({until, reason, by, at, ...}) or NULL;
-- accepted_hold is the last day the acceptance keeps the item from being overdue (its "until",
-- or the restarted due date when the policy restarts it at expiry), written by the store with
-- every row: an item is overdue when due_date < today AND (accepted_hold IS NULL OR
-- accepted_hold < today). The dashboard's overdue counters (kind 'd') therefore key an item by
-- greatest(due_date, accepted_hold) (greatest ignores NULL): it leaves the overdue count while
-- accepted and comes back by itself the day after, with no write. Existing rows have no
-- acceptance, so their counters are unchanged and nothing is backfilled.
--
-- backlog_events.on_behalf_of is the person a delegate account acted for (X-Acting-User, or the
-- web's trusted proxy header); NULL when the account acted for itself.
ALTER TABLE backlog_items ADD COLUMN IF NOT EXISTS accepted jsonb;
ALTER TABLE backlog_items ADD COLUMN IF NOT EXISTS accepted_hold date;
ALTER TABLE backlog_events ADD COLUMN IF NOT EXISTS on_behalf_of text;

-- Accepted items are few: the dashboard's list, the expiry sweep and generation's suppression
-- read them through this index instead of scanning the table.
CREATE INDEX IF NOT EXISTS backlog_items_accepted_idx ON backlog_items (env, id) WHERE accepted IS NOT NULL;

-- Step 5's function with the 'd' counters keyed by greatest(due_date, accepted_hold).
CREATE OR REPLACE FUNCTION backlog_counts_trigger() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
            SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
            UNION ALL
            SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
            UNION ALL
            SELECT env, 'd', to_char(greatest(due_date, accepted_hold), 'YYYY-MM-DD'), '', 1 FROM new_rows
                WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
            SELECT env, 's'::text AS kind, status AS a, priority AS b, 1 AS d FROM new_rows
            UNION ALL
            SELECT env, 'v', service, '', 1 FROM new_rows WHERE status IN ('open', 'in_progress', 'blocked')
            UNION ALL
            SELECT env, 'd', to_char(greatest(due_date, accepted_hold), 'YYYY-MM-DD'), '', 1 FROM new_rows
                WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL
            UNION ALL
            SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
            UNION ALL
            SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
            UNION ALL
            SELECT env, 'd', to_char(greatest(due_date, accepted_hold), 'YYYY-MM-DD'), '', -1 FROM old_rows
                WHERE status IN ('open', 'in_progress', 'blocked') AND due_date IS NOT NULL) AS x
        GROUP BY env, kind, a, b HAVING sum(d) <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO backlog_counts_pending (tx, env, kind, a, b, n)
        SELECT pg_current_xact_id(), env, kind, a, b, sum(d) FROM (
            SELECT env, 's'::text AS kind, status AS a, priority AS b, -1 AS d FROM old_rows
            UNION ALL
            SELECT env, 'v', service, '', -1 FROM old_rows WHERE status IN ('open', 'in_progress', 'blocked')
            UNION ALL
            SELECT env, 'd', to_char(greatest(due_date, accepted_hold), 'YYYY-MM-DD'), '', -1 FROM old_rows
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
