-- 0001: the core metadata tables (datasets, contracts, versions, ingests,
-- lineage, users, tokens, audit). Only primary keys are declared: uniqueness
-- of names is enforced by the single writer, because DuckDB turns an UPDATE
-- on an indexed row into delete+insert and trips over its own constraints.
CREATE TABLE datasets (
    id UUID PRIMARY KEY,
    name VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE contracts (
    id UUID PRIMARY KEY,
    dataset_id UUID NOT NULL,
    version INTEGER NOT NULL,
    yaml VARCHAR NOT NULL,
    inferred BOOLEAN NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE dataset_versions (
    id UUID PRIMARY KEY,
    dataset_id UUID NOT NULL,
    number INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    columns JSON,
    parquet_path VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    claim_id VARCHAR NOT NULL,
    contract_version INTEGER,
    report JSON,
    summary JSON,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE ingests (
    id UUID PRIMARY KEY,
    dataset VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR,
    size_bytes BIGINT,
    outcome VARCHAR NOT NULL,
    reason VARCHAR,
    message VARCHAR NOT NULL,
    version_number INTEGER,
    actor VARCHAR NOT NULL,
    duration_ms DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE lineage_edges (
    id UUID PRIMARY KEY,
    src VARCHAR NOT NULL,
    dst VARCHAR NOT NULL,
    relation VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE users (
    id UUID PRIMARY KEY,
    username VARCHAR NOT NULL,
    password_hash VARCHAR,
    role VARCHAR NOT NULL,
    disabled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE tokens (
    id UUID PRIMARY KEY,
    user_id UUID,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    token_hash VARCHAR NOT NULL,
    role VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE TABLE audit_events (
    id UUID PRIMARY KEY,
    seq BIGINT NOT NULL,
    created_at VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    before JSON,
    after JSON,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
);
