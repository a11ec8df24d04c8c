-- 0012: experiments as a concept of their own, with ids (the MLflow client addresses
-- experiments by id). A run still names its experiment (runs.experiment, the join key);
-- the experiment "default" has the id '0', as MLflow's Default experiment does. Every
-- experiment already named by a run gets a row (no row is seeded: a restore loads the
-- backup's rows into the fresh schema; "default" is made on first use). Text keys (DuckDB: no autoincrement);
-- no UNIQUE index on name: the one writer checks it (DuckDB updates of indexed rows
-- trip over-eager constraint checks). runs.deleted_at: MLflow's soft delete.
CREATE TABLE experiments (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    artifact_location VARCHAR,
    lifecycle_stage VARCHAR NOT NULL,
    tags JSON,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
INSERT INTO experiments (id, name, artifact_location, lifecycle_stage, tags, created_by,
                         created_at, updated_at)
SELECT CASE WHEN experiment = 'default' THEN '0'
            ELSE replace(CAST(gen_random_uuid() AS VARCHAR), '-', '') END, experiment, NULL, 'active', NULL,
       'system', min(created_at), max(created_at)
FROM runs GROUP BY experiment;
ALTER TABLE runs ADD COLUMN deleted_at TIMESTAMPTZ;
-- MLflow 3's logged models (what mlflow.<flavor>.log_model records): a name, a status
-- and params/tags, tied to the run whose artifacts hold its files
-- (models/<id>/...). Not registered models: the registry stays ours.
CREATE TABLE logged_models (
    id VARCHAR PRIMARY KEY,
    experiment_id VARCHAR NOT NULL,
    run_id UUID NOT NULL,
    name VARCHAR NOT NULL,
    model_type VARCHAR,
    status VARCHAR NOT NULL,
    params JSON,
    tags JSON,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
