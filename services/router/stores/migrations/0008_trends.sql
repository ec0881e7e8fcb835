-- Step 8: the indexes of the weekly trends (GET /v1/backlog/trends, stores/pg_trends.py).
--
-- Items created per week, per env (`opened`, and the scope of the week-end counts).
CREATE INDEX IF NOT EXISTS backlog_items_env_created_idx ON backlog_items (env, created_at);
-- Status changes into done/canceled by time (`closed`).
CREATE INDEX IF NOT EXISTS backlog_events_closing_ts_idx ON backlog_events (ts)
    WHERE type = 'status_changed' AND (meta->>'to') IN ('done', 'canceled');
-- An item's status, due-date and acceptance changes by time: its state at a week's end is
-- the value before its first change after it (stores/pg_trends.STATE_EVENTS_SQL: the same types).
CREATE INDEX IF NOT EXISTS backlog_events_changes_idx ON backlog_events (item_id, type, ts)
    WHERE type IN ('acceptance_expired', 'accepted', 'due_date_changed', 'status_changed', 'unaccepted');
