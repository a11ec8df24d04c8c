-- 0010: what a training run warned about (rows left out, a rare class, a constant
-- column...), kept on the run so the console and the model card can show it.
ALTER TABLE runs ADD COLUMN warnings JSON;
