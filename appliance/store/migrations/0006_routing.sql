-- 0006: traffic routing per model (canary and shadow), append-only, and the
-- role of each logged prediction (primary, canary or shadow).
CREATE TABLE model_routing (
    id UUID PRIMARY KEY,
    model VARCHAR NOT NULL,
    config JSON NOT NULL,
    updated_by VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE predictions ADD COLUMN role VARCHAR DEFAULT 'primary';
