-- 0018: uniqueness by constraints, not by the single writer. With the metadata on
-- PostgreSQL several hosts write at once; these make a second version number, a second
-- model or dataset of one name, or a second ledger row for one keyed job attempt fail
-- instead of landing (allocation itself is serialised by an advisory lock, so in practice
-- nothing hits them: they are the fence). DuckDB 2 updates indexed rows without the
-- over-eager checks 0001 worked around, so the embedded store gets them too.
CREATE UNIQUE INDEX datasets_name ON datasets (name);
CREATE UNIQUE INDEX dataset_versions_number ON dataset_versions (dataset_id, number);
CREATE UNIQUE INDEX contracts_version ON contracts (dataset_id, version);
CREATE UNIQUE INDEX registered_models_name ON registered_models (name);
CREATE UNIQUE INDEX model_versions_number ON model_versions (model_id, number);
CREATE UNIQUE INDEX job_runs_attempt ON job_runs (idempotency_key, attempt);
