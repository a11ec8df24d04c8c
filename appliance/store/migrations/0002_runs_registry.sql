-- 0002: experiment tracking (runs, metric points, artifacts) and the model
-- registry (models, versions, append-only alias events).
CREATE TABLE runs (
    id UUID PRIMARY KEY,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    parent_id UUID,
    experiment VARCHAR NOT NULL,
    dataset VARCHAR,
    dataset_version INTEGER,
    params JSON,
    tags JSON,
    metrics JSON,
    environment JSON,
    progress JSON,
    seed INTEGER,
    spec VARCHAR,
    error VARCHAR,
    logs VARCHAR,
    attempts INTEGER NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ
);
CREATE TABLE run_metrics (
    run_id UUID NOT NULL,
    key VARCHAR NOT NULL,
    step BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    logged_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE run_artifacts (
    id UUID PRIMARY KEY,
    run_id UUID NOT NULL,
    name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE registered_models (
    id UUID PRIMARY KEY,
    name VARCHAR NOT NULL,
    description VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE model_versions (
    id UUID PRIMARY KEY,
    model_id UUID NOT NULL,
    number INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    run_id UUID,
    flavor VARCHAR NOT NULL,
    task VARCHAR,
    onnx_sha256 VARCHAR NOT NULL,
    onnx_size BIGINT NOT NULL,
    signature JSON,
    parity JSON,
    metrics JSON,
    fairness JSON,
    dataset VARCHAR,
    dataset_version INTEGER,
    card JSON,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE alias_events (
    id UUID PRIMARY KEY,
    model_id UUID NOT NULL,
    alias VARCHAR NOT NULL,
    version_number INTEGER,
    previous_version INTEGER,
    action VARCHAR NOT NULL,
    forced BOOLEAN NOT NULL,
    reason VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
