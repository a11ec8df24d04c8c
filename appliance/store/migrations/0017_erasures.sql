-- 0017: erasure by key and retention. One row per erasure (who, when, which columns:
-- never the erased values), one row per dataset version it rewrote (the link a model
-- card follows to say "trained on data since erased"). Files still to delete after the
-- commit are listed in pending_files (paths relative to the home) until the clean-up ran.
CREATE TABLE erasures (
    id UUID PRIMARY KEY,
    actor VARCHAR NOT NULL,
    columns JSON NOT NULL,
    dataset VARCHAR,
    status VARCHAR NOT NULL,
    counts JSON,
    pending_files JSON,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE erasure_versions (
    id UUID PRIMARY KEY,
    erasure_id UUID NOT NULL,
    dataset VARCHAR NOT NULL,
    old_version INTEGER NOT NULL,
    new_version INTEGER NOT NULL,
    rows_removed BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
