-- 0011: a job run's parameters as typed columns: the dataset version a new-data run
-- trains, no longer parsed back out of its idempotency key ("<job>:<dataset>@<version>",
-- kept: it is the never-twice rule and part of the API's JobRun). Old rows are backfilled
-- from the key (job ids and dataset names hold no ':' or '@').
ALTER TABLE job_runs ADD COLUMN dataset VARCHAR;
ALTER TABLE job_runs ADD COLUMN dataset_version INTEGER;
UPDATE job_runs
SET dataset = split_part(split_part(idempotency_key, ':', 2), '@', 1),
    dataset_version = CAST(split_part(idempotency_key, '@', 2) AS INTEGER)
WHERE idempotency_key LIKE '%:%@%';
