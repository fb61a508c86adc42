-- Job priorities: workers claim due jobs of the most urgent class first — sending what is already planned (0),
-- then planning runs (1), then expanding recipients (2) — so that a large topic's deliveries start while its
-- expansion continues, and other triggers' deliveries do not wait behind it.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
UPDATE jobs SET priority = 0 WHERE kind IN ('deliver', 'receipts');
UPDATE jobs SET priority = 2 WHERE kind = 'expand';
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (priority, run_at, id);
