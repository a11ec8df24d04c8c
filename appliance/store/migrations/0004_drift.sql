-- 0004: drift reports: one row per check, features and prediction drift as JSON.
CREATE TABLE drift_reports (
    id UUID PRIMARY KEY,
    model VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    reference VARCHAR NOT NULL,
    current VARCHAR NOT NULL,
    drift BOOLEAN NOT NULL,
    p_val DOUBLE PRECISION NOT NULL,
    correction VARCHAR NOT NULL,
    features JSON,
    prediction JSON,
    rows_reference BIGINT NOT NULL,
    rows_current BIGINT NOT NULL,
    duration_ms DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL,
    created_by VARCHAR NOT NULL
);
