-- 0005: alerts (one row per breach of a rule, keyed by kind and key) and the
-- admin-registered webhooks that receive them.
CREATE TABLE alerts (
    id UUID PRIMARY KEY,
    kind VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    detail JSON,
    count INTEGER NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    acknowledged_by VARCHAR,
    acknowledged_at TIMESTAMPTZ,
    note VARCHAR,
    resolved_at TIMESTAMPTZ
);
CREATE TABLE webhooks (
    id UUID PRIMARY KEY,
    url VARCHAR NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
