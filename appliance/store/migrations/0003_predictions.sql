-- 0003: the prediction log and delayed labels, joined by request id.
CREATE TABLE predictions (
    request_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    inputs JSON,
    prediction JSON,
    probabilities JSON,
    latency_ms DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE labels (
    request_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    label JSON,
    source VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
