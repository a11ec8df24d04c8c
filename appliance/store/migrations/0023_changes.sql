-- 0023: the change feed. Scale-out hosts cache what serving and authentication read on
-- every request (alias maps, routing, token checks); a change committed through one host
-- appends a row here in the same transaction, and every host's poller reads the rows
-- after the last seq it saw and drops or reloads what they name (appliance/changes.py,
-- docs/scale-out.md "Serving on every host"). seq comes from a sequence; appends are
-- serialised by the writers' advisory lock, so seq order is commit order. The embedded
-- store (one process) creates the table and never writes it. The leader prunes old rows.
CREATE SEQUENCE changes_seq;
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY DEFAULT nextval('changes_seq'),
    topic VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX changes_changed_at ON changes (changed_at);
