-- Step 7: the indexes of the weekly trends (GET /v1/backlog/trends, stores/pg_trends.py).
--
-- Items created per week, per env (`opened`, and the scope of the week-end counts).
CREATE INDEX IF NOT EXISTS backlog_items_env_created_idx ON backlog_items (env, created_at);
-- Status changes into done/canceled by time (`closed`).
CREATE INDEX IF NOT EXISTS backlog_events_closing_ts_idx ON backlog_events (ts)
    WHERE type = 'status_changed' AND (meta->>'to') IN ('done', 'canceled');
-- An item's status and due-date changes by time: its state at a week's end is the `from` of
-- its first change after it.
CREATE INDEX IF NOT EXISTS backlog_events_changes_idx ON backlog_events (item_id, type, ts)
    WHERE type IN ('status_changed', 'due_date_changed');
