-- 0013: the multivariate (domain classifier) drift score of a check, as JSON beside the
-- per-feature tests; null for reports stored before (and for checks that turned it off).
ALTER TABLE drift_reports ADD COLUMN multivariate JSON;
