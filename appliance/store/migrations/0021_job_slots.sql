-- 0021: one ledger row per job, schedule slot and attempt. A recurring tick records the
-- time it was scheduled for (the trigger's slot, the same on every host), not the wall
-- clock, and the unique index refuses a second row for that slot: a deposed leader that
-- still ticks once more is fenced (its insert is a Conflict and it runs nothing). Runs
-- queued by new data, by hand, by a retry or by recovery are written without a slot
-- (NULL: never equal, so never refused); their time is created_at. Rows from before keep
-- the clock reading they were written with (distinct per job: microseconds), and stay
-- as they are: DuckDB cannot build an index in a transaction that updated the table.
CREATE UNIQUE INDEX job_runs_slot ON job_runs (job, scheduled_for, attempt);
