-- Step 6: tracker sync (services/router/stores/tracker_links_postgres.py, services/router/trackers/).
--
-- A link lives and dies with its item (ON DELETE CASCADE: cleanup takes it along). The typed
-- columns are what the database must enforce or index; `data` holds the whole record as the
-- other backends keep it (remote state last seen, what was last pushed, the comment mark).
CREATE TABLE IF NOT EXISTS tracker_links (
    item_id    text COLLATE "C" PRIMARY KEY REFERENCES backlog_items (id) ON DELETE CASCADE,
    tracker    text COLLATE "C" NOT NULL,
    project    text NOT NULL,
    state      text NOT NULL CHECK (state IN ('creating', 'linked', 'unlinked')),
    remote_key text COLLATE "C",
    url        text,
    data       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One item per remote issue.
CREATE UNIQUE INDEX IF NOT EXISTS tracker_links_remote_key_idx ON tracker_links (tracker, remote_key)
    WHERE remote_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tracker_links_tracker_idx ON tracker_links (tracker, item_id);

-- The outbox's failures and schedule: a create or push in backoff or parked (subject = item id),
-- a pull a webhook asked for (subject = remote key, no item).
CREATE TABLE IF NOT EXISTS tracker_sync_work (
    tracker    text COLLATE "C" NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('create', 'push', 'pull')),
    item_id    text COLLATE "C" REFERENCES backlog_items (id) ON DELETE CASCADE,
    data       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tracker, subject)
);
CREATE INDEX IF NOT EXISTS tracker_sync_work_item_idx ON tracker_sync_work (item_id);

-- The pull's "updated since" cursor per tracker and project.
CREATE TABLE IF NOT EXISTS tracker_sync_cursors (
    tracker    text COLLATE "C" NOT NULL,
    project    text COLLATE "C" NOT NULL,
    cursor     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tracker, project)
);

-- Per tracker: last run, last success, last error, rate-limit wait, request counts.
CREATE TABLE IF NOT EXISTS tracker_sync_state (
    tracker    text COLLATE "C" PRIMARY KEY,
    data       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
