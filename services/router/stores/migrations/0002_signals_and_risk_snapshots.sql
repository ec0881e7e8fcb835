-- Step 2: signals (one row per kind and id, the signal itself as jsonb) and the hourly risk
-- snapshots computed from them (services/router/signals/store_postgres.py reads and writes both).
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

-- One snapshot per (env, service, hour slot); a later computation of a slot replaces it.
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
