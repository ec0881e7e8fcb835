-- Step 3: the scheduler's run ledger (services/router/jobs/pg_ledger.py): one row per job and
-- slot, so several scheduler processes run each slot exactly once.
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
-- `backlog jobs history` (newest first) and the health check's "running" runs.
CREATE INDEX IF NOT EXISTS job_runs_slot_idx ON job_runs (slot DESC);
CREATE INDEX IF NOT EXISTS job_runs_running_idx ON job_runs (job, slot) WHERE status = 'running';
