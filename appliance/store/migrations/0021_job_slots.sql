-- 0021: one ledger row per job, schedule slot and attempt. A recurring tick records the
-- time it was scheduled for (the trigger's slot, the same on every host), not the wall
-- clock, and the unique index refuses a second row for that slot: a deposed leader that
-- still ticks once more is fenced (its insert is a Conflict and it runs nothing). Runs
-- queued by new data, by hand, by a retry or by recovery have no slot (NULL: never equal,
-- so never refused); their time is created_at. Rows from before keep their value unless
-- they would collide.
UPDATE job_runs SET scheduled_for = NULL WHERE trigger NOT IN ('interval', 'cron');
UPDATE job_runs SET scheduled_for = NULL WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY job, scheduled_for, attempt
                                      ORDER BY created_at, id) AS n
        FROM job_runs WHERE scheduled_for IS NOT NULL) AS d
    WHERE n > 1);
CREATE UNIQUE INDEX job_runs_slot ON job_runs (job, scheduled_for, attempt);
