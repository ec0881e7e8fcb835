"""DDL of the ``signals`` and ``risk_snapshots`` tables: one migration step, idempotent.

Kept free of psycopg imports so the migration module (``stores/pg_schema.py``) can list it as
a versioned step and print it in ``--dry-run`` without a driver.
"""

from __future__ import annotations

SIGNALS_STEP_NAME = "signals_and_risk_snapshots"

SIGNALS_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS signals (
    kind        text        NOT NULL,
    id          text        NOT NULL,
    env         text        NOT NULL,
    service     text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    data        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
)""",
    "CREATE INDEX IF NOT EXISTS signals_env_service_kind_idx ON signals (env, service, kind, occurred_at)",
    "CREATE INDEX IF NOT EXISTS signals_kind_occurred_idx ON signals (kind, occurred_at)",
    """CREATE TABLE IF NOT EXISTS risk_snapshots (
    env         text             NOT NULL,
    service     text             NOT NULL,
    slot        timestamptz      NOT NULL,
    score       double precision NOT NULL CHECK (score >= 0 AND score <= 100),
    band        text             NOT NULL,
    parts       jsonb            NOT NULL,
    computed_at timestamptz      NOT NULL,
    PRIMARY KEY (env, service, slot)
)""",
    "CREATE INDEX IF NOT EXISTS risk_snapshots_slot_idx ON risk_snapshots (slot)",
)
