-- 0007: the scheduler's run ledger (one row per attempt of a job) and the
-- per-job pause switch, which outlives restarts.
CREATE TABLE job_runs (
    id UUID PRIMARY KEY,
    job VARCHAR NOT NULL,
    trigger VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    idempotency_key VARCHAR,
    scheduled_for TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    duration_ms DOUBLE PRECISION,
    error VARCHAR,
    logs VARCHAR,
    result JSON,
    retry_of UUID
);
CREATE TABLE job_state (
    job VARCHAR PRIMARY KEY,
    paused BOOLEAN NOT NULL,
    updated_by VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
